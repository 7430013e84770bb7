// N-API glue: argument validation and copying on the main thread, one AsyncWorker per
// TPM command, conversion of results and failures back to JavaScript.
#include <napi.h>
#include <tss2/tss2_rc.h>

#include <chrono>
#include <algorithm>
#include <functional>
#include <random>
#include <thread>
#include <string>
#include <utility>
#include <vector>

#include "ops.h"

namespace gtpm {

namespace {

Bytes bytesArg(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Uint8Array");
  }
  auto arr = v.As<Napi::Uint8Array>();
  return Bytes(arr.Data(), arr.Data() + arr.ByteLength());
}

uint32_t u32Arg(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d))) {
    throw Napi::RangeError::New(v.Env(), std::string(what) + " must be an integer in 0..2^32-1");
  }
  return static_cast<uint32_t>(d);
}

KeyAlg algArg(const Napi::Value& v, bool allowEkOnly = false) {
  const uint32_t a = u32Arg(v, "alg");
  if (a != static_cast<uint32_t>(KeyAlg::Rsa2048) && a != static_cast<uint32_t>(KeyAlg::EccP256) &&
      !(allowEkOnly && a == static_cast<uint32_t>(KeyAlg::EccP384))) {
    throw Napi::RangeError::New(v.Env(), "unsupported key algorithm");
  }
  return static_cast<KeyAlg>(a);
}

// { blob?: Uint8Array, handle?: number }
KeyRef keyArg(const Napi::Value& v, const char* what) {
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a key object");
  auto o = v.As<Napi::Object>();
  KeyRef ref;
  Napi::Value blob = o.Get("blob");
  Napi::Value handle = o.Get("handle");
  if (!blob.IsUndefined() && !blob.IsNull()) ref.blob = bytesArg(blob, "key.blob");
  if (!handle.IsUndefined() && !handle.IsNull()) ref.handle = u32Arg(handle, "key.handle");
  Napi::Value name = o.Get("name");
  if (!name.IsUndefined() && !name.IsNull()) ref.name = bytesArg(name, "key.name");
  return ref;
}

// [{ alg: number, pcrs: number[] }]
std::vector<PcrSel> selectionArg(const Napi::Value& v) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), "PCR selection must be an array");
  auto arr = v.As<Napi::Array>();
  std::vector<PcrSel> out;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value item = arr.Get(i);
    if (!item.IsObject()) throw Napi::TypeError::New(v.Env(), "PCR selection entries must be objects");
    auto o = item.As<Napi::Object>();
    PcrSel sel;
    sel.hashAlg = static_cast<TPMI_ALG_HASH>(u32Arg(o.Get("alg"), "pcr bank"));
    Napi::Value pcrs = o.Get("pcrs");
    if (!pcrs.IsArray()) throw Napi::TypeError::New(v.Env(), "pcrs must be an array");
    auto list = pcrs.As<Napi::Array>();
    for (uint32_t j = 0; j < list.Length(); j++) sel.pcrs.push_back(u32Arg(list.Get(j), "pcr"));
    out.push_back(std::move(sel));
  }
  return out;
}

Napi::Value toJs(Napi::Env env, const Value& v) {
  switch (v.kind) {
    case Value::Kind::Null:
      return env.Null();
    case Value::Kind::Number:
      return Napi::Number::New(env, v.num);
    case Value::Kind::String:
      return Napi::String::New(env, v.str);
    case Value::Kind::Bytes: {
      auto out = Napi::Uint8Array::New(env, v.bytes.size());
      if (!v.bytes.empty()) std::copy(v.bytes.begin(), v.bytes.end(), out.Data());
      return out;
    }
    case Value::Kind::Array: {
      auto out = Napi::Array::New(env, v.items.size());
      for (size_t i = 0; i < v.items.size(); i++) out.Set(static_cast<uint32_t>(i), toJs(env, v.items[i]));
      return out;
    }
    case Value::Kind::Object: {
      auto out = Napi::Object::New(env);
      for (const auto& [k, field] : v.fields) out.Set(k, toJs(env, field));
      return out;
    }
  }
  return env.Undefined();
}

enum class Mode { Command, Open, Close };

constexpr int kMemoryRetries = 40;

// Runs one command on the libuv pool. The state lock serialises commands on one
// TPM; the JS facade also queues them so waiting commands do not occupy pool threads.
class Worker : public Napi::AsyncWorker {
 public:
  Worker(Napi::Env env, StatePtr st, std::function<Value(State&)> fn, Mode mode)
      : Napi::AsyncWorker(env, "geofence:tpm"),
        deferred_(Napi::Promise::Deferred::New(env)),
        st_(std::move(st)),
        fn_(std::move(fn)),
        mode_(mode) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    std::lock_guard<std::mutex> lock(st_->mu);
    if (mode_ == Mode::Close) {
      // Idempotent: flushes the SRK and releases ESYS + TCTI if still held.
      st_->shutdown();
      return;
    }
    if (st_->closed || (mode_ != Mode::Open && !st_->opened) || (mode_ == Mode::Open && st_->opened)) {
      failed_ = true;
      failure_ = Failure{0, "", "closed",
                         mode_ == Mode::Open && st_->opened ? "TPM context is already open" : "TPM is closed"};
      return;
    }
    st_->esapiNs = 0;
    for (int attempt = 1;; attempt++) {
      try {
        result_ = fn_(*st_);
        failed_ = false;
        break;
      } catch (const Failure& f) {
        failed_ = true;
        failure_ = f;
      } catch (const std::exception& e) {
        failed_ = true;
        failure_ = Failure{0, "", "internal", e.what()};
        break;
      }
      // Without a resource manager (swtpm, raw /dev/tpm0) several TPM users share a few object
      // and session slots. A command refused for lack of memory had no effect: free our cached
      // SRK slot, back off and run the whole command again.
      const TSS2_RC layer = failure_.rc & TSS2_RC_LAYER_MASK;
      const TSS2_RC rc = failure_.rc & ~TSS2_RC_LAYER_MASK;
      const bool fromTpm = layer == TSS2_TPM_RC_LAYER || layer == TSS2_RESMGR_TPM_RC_LAYER;
      const bool noMemory = fromTpm && (rc == TPM2_RC_OBJECT_MEMORY || rc == TPM2_RC_SESSION_MEMORY);
      if (!noMemory || mode_ != Mode::Command || attempt >= kMemoryRetries) break;
      parkSrk(*st_);
      // Exponential backoff with jitter, capped at 100 ms: about 3 s in total before giving up.
      const int base = std::min(100, 2 << std::min(attempt, 6));
      std::this_thread::sleep_for(std::chrono::milliseconds(base / 2 + static_cast<int>(jitter_() % (base / 2 + 1))));
    }
    // Hold no object slot between commands unless told the TPM has a resource manager.
    if (!st_->cacheSrk && st_->esys != nullptr) parkSrk(*st_);
    esapiNs_ = st_->esapiNs;
    // A context whose open failed is unusable; release the TCTI right away.
    if (failed_ && mode_ == Mode::Open) st_->shutdown();
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (failed_) {
      deferred_.Reject(errorValue(env));
      return;
    }
    auto out = Napi::Object::New(env);
    out.Set("value", toJs(env, result_));
    out.Set("esapiNs", Napi::Number::New(env, static_cast<double>(esapiNs_)));
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Value errorValue(Napi::Env env) {
    std::string text = failure_.rc != 0 ? Tss2_RC_Decode(failure_.rc) : "";
    std::string message = failure_.message;
    if (message.empty()) message = text;
    if (!failure_.command.empty()) message = failure_.command + ": " + message;
    auto err = Napi::Error::New(env, message);
    err.Set("rc", Napi::Number::New(env, failure_.rc));
    err.Set("rcText", Napi::String::New(env, text));
    err.Set("command", Napi::String::New(env, failure_.command));
    err.Set("kind", Napi::String::New(env, failure_.kind));
    return err.Value();
  }

  Napi::Promise::Deferred deferred_;
  std::minstd_rand jitter_{static_cast<unsigned>(nowNs())};
  StatePtr st_;
  std::function<Value(State&)> fn_;
  Mode mode_;
  Value result_;
  bool failed_ = false;
  Failure failure_;
  uint64_t esapiNs_ = 0;
};

class Context : public Napi::ObjectWrap<Context> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Context",
                       {
                           InstanceMethod<&Context::Open>("open"),
                           InstanceMethod<&Context::Close>("close"),
                           InstanceMethod<&Context::Info>("info"),
                           InstanceMethod<&Context::GetRandom>("getRandom"),
                           InstanceMethod<&Context::PcrRead>("pcrRead"),
                           InstanceMethod<&Context::PcrExtend>("pcrExtend"),
                           InstanceMethod<&Context::EkPublic>("ekPublic"),
                           InstanceMethod<&Context::NvReadFirst>("nvReadFirst"),
                           InstanceMethod<&Context::CreateKey>("createKey"),
                           InstanceMethod<&Context::LoadKey>("loadKey"),
                           InstanceMethod<&Context::Persist>("persist"),
                           InstanceMethod<&Context::Evict>("evict"),
                           InstanceMethod<&Context::Sign>("sign"),
                           InstanceMethod<&Context::Certify>("certify"),
                           InstanceMethod<&Context::Quote>("quote"),
                           InstanceMethod<&Context::Activate>("activateCredential"),
                       });
  }

  explicit Context(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Context>(info), st_(std::make_shared<State>()) {}

 private:
  Napi::Value run(Napi::Env env, std::function<gtpm::Value(State&)> fn, Mode mode = Mode::Command) {
    auto* w = new Worker(env, st_, std::move(fn), mode);
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  }

  Napi::Value Open(const Napi::CallbackInfo& info) {
    if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "tcti must be a string");
    std::string tcti = info[0].As<Napi::String>().Utf8Value();
    const bool flush = info[1].ToBoolean().Value();
    const bool cacheSrk = info[2].ToBoolean().Value();
    return run(
        info.Env(),
        [tcti, flush, cacheSrk](State& st) {
          openTpm(st, tcti, flush, cacheSrk);
          return gtpm::Value::null();
        },
        Mode::Open);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    return run(
        info.Env(),
        [](State& st) {
          closeTpm(st);
          return gtpm::Value::null();
        },
        Mode::Close);
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    return run(info.Env(), [](State& st) { return gtpm::info(st); });
  }

  Napi::Value GetRandom(const Napi::CallbackInfo& info) {
    const uint32_t n = u32Arg(info[0], "n");
    if (n > 65536) throw Napi::RangeError::New(info.Env(), "getRandom: at most 65536 bytes per call");
    return run(info.Env(), [n](State& st) { return gtpm::getRandom(st, n); });
  }

  Napi::Value PcrRead(const Napi::CallbackInfo& info) {
    auto sel = selectionArg(info[0]);
    return run(info.Env(), [sel](State& st) { return gtpm::pcrRead(st, sel); });
  }

  Napi::Value PcrExtend(const Napi::CallbackInfo& info) {
    const uint32_t index = u32Arg(info[0], "index");
    Bytes digest = bytesArg(info[1], "digest");
    return run(info.Env(), [index, digest](State& st) { return gtpm::pcrExtend(st, index, digest); });
  }

  Napi::Value EkPublic(const Napi::CallbackInfo& info) {
    const KeyAlg alg = algArg(info[0], true);
    return run(info.Env(), [alg](State& st) { return gtpm::ekPublic(st, alg); });
  }

  Napi::Value NvReadFirst(const Napi::CallbackInfo& info) {
    if (!info[0].IsArray()) throw Napi::TypeError::New(info.Env(), "indices must be an array");
    auto arr = info[0].As<Napi::Array>();
    std::vector<uint32_t> indices;
    for (uint32_t i = 0; i < arr.Length(); i++) indices.push_back(u32Arg(arr.Get(i), "index"));
    return run(info.Env(), [indices](State& st) { return gtpm::nvReadFirst(st, indices); });
  }

  Napi::Value CreateKey(const Napi::CallbackInfo& info) {
    const bool restricted = info[0].ToBoolean().Value();
    const KeyAlg alg = algArg(info[1]);
    const uint32_t persistAt = info[2].IsUndefined() ? 0 : u32Arg(info[2], "persistAt");
    return run(info.Env(),
               [restricted, alg, persistAt](State& st) { return gtpm::createKey(st, restricted, alg, persistAt); });
  }

  Napi::Value LoadKey(const Napi::CallbackInfo& info) {
    Bytes blob = bytesArg(info[0], "blob");
    return run(info.Env(), [blob](State& st) { return gtpm::loadKey(st, blob); });
  }

  Napi::Value Persist(const Napi::CallbackInfo& info) {
    Bytes blob = bytesArg(info[0], "blob");
    const uint32_t handle = u32Arg(info[1], "handle");
    return run(info.Env(), [blob, handle](State& st) { return gtpm::persistKey(st, blob, handle); });
  }

  Napi::Value Evict(const Napi::CallbackInfo& info) {
    const uint32_t handle = u32Arg(info[0], "handle");
    return run(info.Env(), [handle](State& st) { return gtpm::evictKey(st, handle); });
  }

  Napi::Value Sign(const Napi::CallbackInfo& info) {
    KeyRef key = keyArg(info[0], "key");
    Bytes digest = bytesArg(info[1], "digest");
    return run(info.Env(), [key, digest](State& st) { return gtpm::sign(st, key, digest); });
  }

  Napi::Value Certify(const Napi::CallbackInfo& info) {
    KeyRef object = keyArg(info[0], "object");
    KeyRef ak = keyArg(info[1], "ak");
    Bytes qd = bytesArg(info[2], "qualifyingData");
    return run(info.Env(), [object, ak, qd](State& st) { return gtpm::certify(st, object, ak, qd); });
  }

  Napi::Value Quote(const Napi::CallbackInfo& info) {
    KeyRef ak = keyArg(info[0], "ak");
    auto sel = selectionArg(info[1]);
    Bytes qd = bytesArg(info[2], "qualifyingData");
    return run(info.Env(), [ak, sel, qd](State& st) { return gtpm::quote(st, ak, sel, qd); });
  }

  Napi::Value Activate(const Napi::CallbackInfo& info) {
    KeyRef ak = keyArg(info[0], "ak");
    const KeyAlg ekAlg = algArg(info[1], true);
    Bytes cred = bytesArg(info[2], "credentialBlob");
    Bytes secret = bytesArg(info[3], "encryptedSecret");
    return run(info.Env(), [ak, ekAlg, cred, secret](State& st) {
      return gtpm::activateCredential(st, ak, ekAlg, cred, secret);
    });
  }

  StatePtr st_;
};

Napi::Value RcDecode(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), Tss2_RC_Decode(u32Arg(info[0], "rc")));
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Context", Context::Init(env));
  exports.Set("rcDecode", Napi::Function::New(env, RcDecode, "rcDecode"));
  return exports;
}

}  // namespace gtpm

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return gtpm::Init(env, exports); }

NODE_API_MODULE(geofence_tpm, InitAddon)
