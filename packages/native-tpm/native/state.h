// Core types shared by the addon: the per-TPM state, error type, RAII helpers for
// ESYS memory and handles, and the small value tree workers hand back to JavaScript.
//
// Threading model: every TPM command runs on a libuv worker thread while holding
// State::mu. ESAPI contexts are not thread-safe, so nothing touches `esys` without
// that lock. Nothing in this file touches N-API; it is plain C++ usable off-thread.
#pragma once

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tctildr.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace gtpm {

using Bytes = std::vector<uint8_t>;

// Failure of a TSS/TPM call (rc != 0) or of input validation (kind "invalid_argument").
struct Failure {
  uint32_t rc;
  std::string command;
  std::string kind;  // "tpm" (rc from TSS/TPM), "invalid_argument", "closed"
  std::string message;
};

[[noreturn]] void throwInvalid(const std::string& what, const std::string& message);

// A JSON-like value built off-thread and converted to JS on the main thread.
struct Value {
  enum class Kind { Null, Number, String, Bytes, Array, Object } kind = Kind::Null;
  double num = 0;
  std::string str;
  Bytes bytes;
  std::vector<Value> items;
  std::vector<std::pair<std::string, Value>> fields;

  static Value null() { return Value(); }
  static Value number(double n) {
    Value v;
    v.kind = Kind::Number;
    v.num = n;
    return v;
  }
  static Value string(std::string s) {
    Value v;
    v.kind = Kind::String;
    v.str = std::move(s);
    return v;
  }
  static Value bytesOf(Bytes b) {
    Value v;
    v.kind = Kind::Bytes;
    v.bytes = std::move(b);
    return v;
  }
  static Value array() {
    Value v;
    v.kind = Kind::Array;
    return v;
  }
  static Value object() {
    Value v;
    v.kind = Kind::Object;
    return v;
  }
  Value& set(std::string key, Value v) {
    fields.emplace_back(std::move(key), std::move(v));
    return *this;
  }
};

// One open TPM: TCTI + ESYS context, the cached storage root key and the lock.
struct State {
  std::mutex mu;
  TSS2_TCTI_CONTEXT* tcti = nullptr;
  ESYS_CONTEXT* esys = nullptr;
  ESYS_TR srk = ESYS_TR_NONE;  // storage primary (ECC P-256) while loaded
  // The SRK saved with TPM2_ContextSave: reloading it is much cheaper than TPM2_CreatePrimary.
  // (Owned; released with Esys_Free.)
  TPMS_CONTEXT* srkContext = nullptr;
  // Keep the SRK loaded between commands. Only sensible behind a resource manager (or as the sole
  // user of a TPM): without one, an idle context would pin one of the TPM's ~3 object slots.
  bool cacheSrk = false;
  bool closed = false;
  bool opened = false;
  // Time spent inside ESAPI calls during the current command (reset per command).
  uint64_t esapiNs = 0;

  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State();

  // Flushes the cached SRK and tears down ESYS + TCTI. Caller holds `mu`.
  void shutdown();
};

using StatePtr = std::shared_ptr<State>;

inline uint64_t nowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// Runs one ESAPI call, adds its duration to the command's ESAPI time and throws a
// Failure naming the command when it does not succeed.
#define GTPM_CALL(st, cmd, expr)                                  \
  do {                                                            \
    const uint64_t gtpm_t0_ = ::gtpm::nowNs();                    \
    const TSS2_RC gtpm_rc_ = (expr);                              \
    (st).esapiNs += ::gtpm::nowNs() - gtpm_t0_;                   \
    if (gtpm_rc_ != TSS2_RC_SUCCESS) {                            \
      throw ::gtpm::Failure{gtpm_rc_, (cmd), "tpm", std::string()}; \
    }                                                             \
  } while (0)

// Same, but returns the rc instead of throwing (for calls whose failure is an answer).
#define GTPM_TRY(st, expr)                                        \
  ([&]() -> TSS2_RC {                                             \
    const uint64_t gtpm_t0_ = ::gtpm::nowNs();                    \
    const TSS2_RC gtpm_rc_ = (expr);                              \
    (st).esapiNs += ::gtpm::nowNs() - gtpm_t0_;                   \
    return gtpm_rc_;                                              \
  }())

// Owns memory returned by ESAPI (must be released with Esys_Free, not delete).
struct EsysFree {
  void operator()(void* p) const { Esys_Free(p); }
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysFree>;

// Flushes a transient object or session when it goes out of scope.
class FlushGuard {
 public:
  FlushGuard(State& st, ESYS_TR h) : st_(st), h_(h) {}
  FlushGuard(const FlushGuard&) = delete;
  FlushGuard& operator=(const FlushGuard&) = delete;
  ~FlushGuard() {
    if (h_ != ESYS_TR_NONE) {
      GTPM_TRY(st_, Esys_FlushContext(st_.esys, h_));
    }
  }

 private:
  State& st_;
  ESYS_TR h_;
};

// Releases the ESYS metadata of a handle obtained with Esys_TR_FromTPMPublic
// (persistent objects, NV indices): they must be closed, never flushed.
class CloseGuard {
 public:
  CloseGuard(State& st, ESYS_TR h) : st_(st), h_(h) {}
  CloseGuard(const CloseGuard&) = delete;
  CloseGuard& operator=(const CloseGuard&) = delete;
  ~CloseGuard() {
    if (h_ != ESYS_TR_NONE) Esys_TR_Close(st_.esys, &h_);
  }

 private:
  State& st_;
  ESYS_TR h_;
};

}  // namespace gtpm
