#include "ops.h"

#include <tss2/tss2_sys.h>

#include <algorithm>
#include <cstring>
#include <map>

namespace gtpm {

namespace {

constexpr uint32_t kEkPersistentRsa = 0x81010001;
constexpr uint32_t kEkPersistentEcc = 0x81010002;
// Not assigned by the TCG provisioning guidance; swtpm_setup puts its P-384 EK there.
constexpr uint32_t kEkPersistentEccP384 = 0x81010016;

// A TPM response code (layer 0), as opposed to a TCTI/ESYS/MU failure. Only these
// mean "the TPM answered no"; anything else (e.g. a dead socket) must propagate.
bool isTpmAnswer(TSS2_RC rc) {
  const TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
  return rc != TSS2_RC_SUCCESS && (layer == TSS2_TPM_RC_LAYER || layer == TSS2_RESMGR_TPM_RC_LAYER);
}

bool isPersistentHandle(uint32_t h) { return (h >> 24) == TPM2_HT_PERSISTENT; }

template <typename T>
Bytes marshal(TSS2_RC (*fn)(const T*, uint8_t*, size_t, size_t*), const T& v, const char* what) {
  Bytes out(sizeof(T) + 16);
  size_t off = 0;
  const TSS2_RC rc = fn(&v, out.data(), out.size(), &off);
  if (rc != TSS2_RC_SUCCESS) throw Failure{rc, what, "tpm", std::string()};
  out.resize(off);
  return out;
}

Bytes publicBytes(const TPM2B_PUBLIC& pub) { return marshal(Tss2_MU_TPM2B_PUBLIC_Marshal, pub, "Tss2_MU_TPM2B_PUBLIC_Marshal"); }

Bytes nameBytes(const TPM2B_NAME& name) { return Bytes(name.name, name.name + name.size); }

// Splits a key blob into its two halves and rejects truncated or trailing bytes.
void parseBlob(const Bytes& blob, TPM2B_PRIVATE& priv, TPM2B_PUBLIC& pub) {
  std::memset(&priv, 0, sizeof(priv));
  std::memset(&pub, 0, sizeof(pub));
  size_t off = 0;
  if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob.data(), blob.size(), &off, &priv) != TSS2_RC_SUCCESS) {
    throwInvalid("loadKey", "key blob: truncated or malformed TPM2B_PRIVATE");
  }
  if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob.data(), blob.size(), &off, &pub) != TSS2_RC_SUCCESS) {
    throwInvalid("loadKey", "key blob: truncated or malformed TPM2B_PUBLIC");
  }
  if (off != blob.size()) throwInvalid("loadKey", "key blob: trailing bytes after TPM2B_PUBLIC");
}

Bytes makeBlob(const TPM2B_PRIVATE& priv, const TPM2B_PUBLIC& pub) {
  Bytes out = marshal(Tss2_MU_TPM2B_PRIVATE_Marshal, priv, "Tss2_MU_TPM2B_PRIVATE_Marshal");
  const Bytes p = publicBytes(pub);
  out.insert(out.end(), p.begin(), p.end());
  return out;
}

// The storage primary, loaded for the current command: reloaded from its saved context when
// there is one, else created from the deterministic template (the same key every time) and saved.
ESYS_TR srk(State& st) {
  if (st.srk != ESYS_TR_NONE) return st.srk;
  if (st.srkContext != nullptr) {
    ESYS_TR h = ESYS_TR_NONE;
    if (GTPM_TRY(st, Esys_ContextLoad(st.esys, st.srkContext, &h)) == TSS2_RC_SUCCESS) {
      st.srk = h;
      return h;
    }
    // Saved contexts do not survive a TPM reset; fall back to re-deriving the key.
    Esys_Free(st.srkContext);
    st.srkContext = nullptr;
  }
  const TPM2B_PUBLIC tmpl = srkTemplate();
  TPM2B_SENSITIVE_CREATE sens;
  std::memset(&sens, 0, sizeof(sens));
  TPM2B_DATA outside;
  std::memset(&outside, 0, sizeof(outside));
  TPML_PCR_SELECTION pcrs;
  std::memset(&pcrs, 0, sizeof(pcrs));
  ESYS_TR h = ESYS_TR_NONE;
  GTPM_CALL(st, "TPM2_CreatePrimary(SRK)",
            Esys_CreatePrimary(st.esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                               &tmpl, &outside, &pcrs, &h, nullptr, nullptr, nullptr, nullptr));
  st.srk = h;
  TPMS_CONTEXT* saved = nullptr;
  if (GTPM_TRY(st, Esys_ContextSave(st.esys, h, &saved)) == TSS2_RC_SUCCESS) st.srkContext = saved;
  return h;
}

}  // namespace

void parkSrk(State& st) {
  if (st.srk == ESYS_TR_NONE) return;
  // Flush if still loaded; if the TPM no longer has it, just forget the ESYS metadata.
  if (GTPM_TRY(st, Esys_FlushContext(st.esys, st.srk)) != TSS2_RC_SUCCESS) Esys_TR_Close(st.esys, &st.srk);
  st.srk = ESYS_TR_NONE;
}

void dropSrk(State& st) {
  parkSrk(st);
  if (st.srkContext != nullptr) {
    Esys_Free(st.srkContext);
    st.srkContext = nullptr;
  }
}

namespace {

// A key made usable for one command: loaded from its blob (flushed afterwards) or
// bound to its persistent handle (ESYS metadata closed afterwards).
class UsableKey {
 public:
  UsableKey(State& st, const KeyRef& ref, const char* role) : st_(st) {
    if (ref.handle != 0 || ref.blob.empty()) {
      if (!isPersistentHandle(ref.handle)) {
        throwInvalid(role, "key has neither a blob nor a persistent handle (0x81000000-0x81FFFFFF)");
      }
      GTPM_CALL(st, std::string("Esys_TR_FromTPMPublic(") + role + ")",
                Esys_TR_FromTPMPublic(st.esys, ref.handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &h_));
      transient_ = false;
      // A persistent handle can be evicted and re-used for another key: make sure it still holds
      // the key the caller means before using it.
      if (!ref.name.empty()) {
        // The destructor does not run when a constructor throws: release the handle here.
        bool same = false;
        try {
          same = name() == ref.name;
        } catch (...) {
          Esys_TR_Close(st.esys, &h_);
          throw;
        }
        if (!same) {
          Esys_TR_Close(st.esys, &h_);
          throwInvalid(role, "the persistent handle holds a different key than key.name");
        }
      }
      return;
    }
    TPM2B_PRIVATE priv;
    TPM2B_PUBLIC pub;
    parseBlob(ref.blob, priv, pub);
    // Was the SRK already loaded before this load (kept across commands with cacheSrk)? Then it may
    // have been flushed under us by another user of a TPM without resource manager.
    const bool wasLoaded = st.srk != ESYS_TR_NONE;
    const ESYS_TR parent = srk(st);
    TSS2_RC rc =
        GTPM_TRY(st, Esys_Load(st.esys, parent, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &h_));
    if (rc != TSS2_RC_SUCCESS && wasLoaded && isTpmAnswer(rc)) {
      // Reload it (from its saved context, or re-derived) and try once more; a key that still does
      // not load is reported as is.
      parkSrk(st);
      const ESYS_TR fresh = srk(st);
      rc = GTPM_TRY(st, Esys_Load(st.esys, fresh, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &h_));
    }
    if (rc != TSS2_RC_SUCCESS) throw Failure{rc, std::string("TPM2_Load(") + role + ")", "tpm", ""};
    transient_ = true;
    // A loaded child no longer needs its parent: give the slot back right away so this command
    // holds as few of the shared object slots as possible.
    if (!st.cacheSrk) parkSrk(st);
  }
  UsableKey(const UsableKey&) = delete;
  UsableKey& operator=(const UsableKey&) = delete;
  ~UsableKey() {
    if (h_ == ESYS_TR_NONE) return;
    if (transient_) {
      GTPM_TRY(st_, Esys_FlushContext(st_.esys, h_));
    } else {
      Esys_TR_Close(st_.esys, &h_);
    }
  }
  ESYS_TR handle() const { return h_; }

  Bytes name() {
    TPM2B_NAME* raw = nullptr;
    GTPM_CALL(st_, "Esys_TR_GetName", Esys_TR_GetName(st_.esys, h_, &raw));
    EsysPtr<TPM2B_NAME> name(raw);
    return nameBytes(*name);
  }

 private:
  State& st_;
  ESYS_TR h_ = ESYS_TR_NONE;
  bool transient_ = false;
};

TPML_PCR_SELECTION toSelection(const std::vector<PcrSel>& sel) {
  TPML_PCR_SELECTION out;
  std::memset(&out, 0, sizeof(out));
  if (sel.size() > TPM2_NUM_PCR_BANKS) throwInvalid("pcrSelection", "too many PCR banks");
  for (const auto& bank : sel) {
    TPMS_PCR_SELECTION& s = out.pcrSelections[out.count++];
    s.hash = bank.hashAlg;
    s.sizeofSelect = 3;
    for (uint32_t pcr : bank.pcrs) {
      if (pcr >= 24) throwInvalid("pcrSelection", "PCR index out of range (0..23)");
      s.pcrSelect[pcr / 8] |= static_cast<uint8_t>(1u << (pcr % 8));
    }
  }
  return out;
}

bool selectionEmpty(const TPML_PCR_SELECTION& s) {
  for (uint32_t i = 0; i < s.count; i++) {
    for (uint32_t j = 0; j < s.pcrSelections[i].sizeofSelect; j++) {
      if (s.pcrSelections[i].pcrSelect[j] != 0) return false;
    }
  }
  return true;
}

// TPM2_PCR_Read returns at most 8 digests per call: read until every selected PCR is
// covered, and start over if the PCR update counter moves in between so the values
// are one consistent snapshot.
Value readPcrs(State& st, const std::vector<PcrSel>& sel) {
  const TPML_PCR_SELECTION all = toSelection(sel);
  for (int attempt = 0; attempt < 5; attempt++) {
    TPML_PCR_SELECTION want = all;
    std::map<std::pair<uint16_t, uint32_t>, Bytes> values;
    bool haveCounter = false;
    uint32_t counter = 0;
    bool restarted = false;
    while (!selectionEmpty(want)) {
      uint32_t updateCounter = 0;
      TPML_PCR_SELECTION* outSelRaw = nullptr;
      TPML_DIGEST* digestsRaw = nullptr;
      GTPM_CALL(st, "TPM2_PCR_Read",
                Esys_PCR_Read(st.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &want, &updateCounter,
                              &outSelRaw, &digestsRaw));
      EsysPtr<TPML_PCR_SELECTION> outSel(outSelRaw);
      EsysPtr<TPML_DIGEST> digests(digestsRaw);
      if (haveCounter && updateCounter != counter) {
        restarted = true;
        break;
      }
      haveCounter = true;
      counter = updateCounter;
      if (selectionEmpty(*outSel)) {
        throwInvalid("TPM2_PCR_Read", "the TPM returned no values for the selection (inactive PCR bank?)");
      }
      uint32_t k = 0;
      for (uint32_t i = 0; i < outSel->count; i++) {
        const TPMS_PCR_SELECTION& s = outSel->pcrSelections[i];
        for (uint32_t byte = 0; byte < s.sizeofSelect; byte++) {
          for (uint32_t bit = 0; bit < 8; bit++) {
            if ((s.pcrSelect[byte] & (1u << bit)) == 0) continue;
            if (k >= digests->count) throwInvalid("TPM2_PCR_Read", "digest count does not match selection");
            const TPM2B_DIGEST& d = digests->digests[k++];
            values[{s.hash, byte * 8 + bit}] = Bytes(d.buffer, d.buffer + d.size);
            for (uint32_t w = 0; w < want.count; w++) {
              if (want.pcrSelections[w].hash == s.hash) {
                want.pcrSelections[w].pcrSelect[byte] &= static_cast<uint8_t>(~(1u << bit));
              }
            }
          }
        }
      }
    }
    if (restarted) continue;
    Value arr = Value::array();
    for (auto& [key, digest] : values) {
      Value entry = Value::object();
      entry.set("alg", Value::number(key.first));
      entry.set("pcr", Value::number(key.second));
      entry.set("value", Value::bytesOf(std::move(digest)));
      arr.items.push_back(std::move(entry));
    }
    Value out = Value::object();
    out.set("values", std::move(arr));
    out.set("updateCounter", Value::number(counter));
    return out;
  }
  throw Failure{0, "TPM2_PCR_Read", "tpm", "PCR values kept changing while being read"};
}

uint32_t tpmProperty(State& st, TPM2_PT prop) {
  TPMI_YES_NO more = 0;
  TPMS_CAPABILITY_DATA* raw = nullptr;
  GTPM_CALL(st, "TPM2_GetCapability",
            Esys_GetCapability(st.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES, prop,
                               1, &more, &raw));
  EsysPtr<TPMS_CAPABILITY_DATA> cap(raw);
  const auto& props = cap->data.tpmProperties;
  if (props.count < 1 || props.tpmProperty[0].property != prop) {
    throw Failure{0, "TPM2_GetCapability", "tpm", "TPM did not report the requested property"};
  }
  return props.tpmProperty[0].value;
}

// Handles of every loaded object/session, used to clear leftovers from a process that
// died without flushing (swtpm has no resource manager that would do it).
std::vector<TPM2_HANDLE> loadedHandles(State& st, TPM2_HANDLE first) {
  std::vector<TPM2_HANDLE> out;
  TPMI_YES_NO more = 1;
  TPM2_HANDLE next = first;
  while (more) {
    TPMS_CAPABILITY_DATA* raw = nullptr;
    GTPM_CALL(st, "TPM2_GetCapability(handles)",
              Esys_GetCapability(st.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, next,
                                 TPM2_MAX_CAP_HANDLES, &more, &raw));
    EsysPtr<TPMS_CAPABILITY_DATA> cap(raw);
    const auto& hs = cap->data.handles;
    for (uint32_t i = 0; i < hs.count; i++) {
      if ((hs.handle[i] >> 24) != (first >> 24)) {
        more = 0;
        break;
      }
      out.push_back(hs.handle[i]);
    }
    if (hs.count == 0) break;
    next = hs.handle[hs.count - 1] + 1;
  }
  return out;
}

KeyAlg algOfPublic(const TPM2B_PUBLIC& pub, bool& ok) {
  ok = false;
  if (pub.publicArea.type == TPM2_ALG_RSA && pub.publicArea.parameters.rsaDetail.keyBits == 2048) {
    ok = true;
    return KeyAlg::Rsa2048;
  }
  if (pub.publicArea.type == TPM2_ALG_ECC && pub.publicArea.parameters.eccDetail.curveID == TPM2_ECC_NIST_P256) {
    ok = true;
    return KeyAlg::EccP256;
  }
  if (pub.publicArea.type == TPM2_ALG_ECC && pub.publicArea.parameters.eccDetail.curveID == TPM2_ECC_NIST_P384) {
    ok = true;
    return KeyAlg::EccP384;
  }
  return KeyAlg::EccP256;
}

// The endorsement key for one command: the persistent EK when the TPM has one of the
// requested algorithm, else a primary created from the TCG default template (flushed
// by the caller through `transient`).
struct Ek {
  ESYS_TR handle = ESYS_TR_NONE;
  bool transient = false;
  uint32_t persistentHandle = 0;
  TPM2B_PUBLIC pub;
};

Ek acquireEk(State& st, KeyAlg alg) {
  Ek ek;
  std::memset(&ek.pub, 0, sizeof(ek.pub));
  const uint32_t persistent = alg == KeyAlg::Rsa2048   ? kEkPersistentRsa
                              : alg == KeyAlg::EccP256 ? kEkPersistentEcc
                                                       : kEkPersistentEccP384;
  ESYS_TR h = ESYS_TR_NONE;
  const TSS2_RC rc = GTPM_TRY(
      st, Esys_TR_FromTPMPublic(st.esys, persistent, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &h));
  if (rc == TSS2_RC_SUCCESS) {
    TPM2B_PUBLIC* rawPub = nullptr;
    const TSS2_RC rrc = GTPM_TRY(st, Esys_ReadPublic(st.esys, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                                     &rawPub, nullptr, nullptr));
    EsysPtr<TPM2B_PUBLIC> pub(rawPub);
    bool known = false;
    const KeyAlg found = rrc == TSS2_RC_SUCCESS ? algOfPublic(*pub, known) : alg;
    const bool isEk = known && found == alg &&
                      (pub->publicArea.objectAttributes & TPMA_OBJECT_RESTRICTED) != 0 &&
                      (pub->publicArea.objectAttributes & TPMA_OBJECT_DECRYPT) != 0;
    if (isEk) {
      ek.handle = h;
      ek.persistentHandle = persistent;
      ek.pub = *pub;
      return ek;
    }
    Esys_TR_Close(st.esys, &h);
    if (rrc != TSS2_RC_SUCCESS && !isTpmAnswer(rrc)) throw Failure{rrc, "TPM2_ReadPublic(EK)", "tpm", ""};
  } else if (!isTpmAnswer(rc) && (rc & TSS2_RC_LAYER_MASK) != TSS2_ESAPI_RC_LAYER) {
    throw Failure{rc, "Esys_TR_FromTPMPublic(EK)", "tpm", ""};
  }
  const TPM2B_PUBLIC tmpl = ekTemplate(alg);
  TPM2B_SENSITIVE_CREATE sens;
  std::memset(&sens, 0, sizeof(sens));
  TPM2B_DATA outside;
  std::memset(&outside, 0, sizeof(outside));
  TPML_PCR_SELECTION pcrs;
  std::memset(&pcrs, 0, sizeof(pcrs));
  TPM2B_PUBLIC* rawPub = nullptr;
  GTPM_CALL(st, "TPM2_CreatePrimary(EK)",
            Esys_CreatePrimary(st.esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                               &sens, &tmpl, &outside, &pcrs, &ek.handle, &rawPub, nullptr, nullptr, nullptr));
  EsysPtr<TPM2B_PUBLIC> pub(rawPub);
  ek.transient = true;
  ek.pub = *pub;
  return ek;
}

void releaseEk(State& st, Ek& ek) {
  if (ek.handle == ESYS_TR_NONE) return;
  if (ek.transient) {
    GTPM_TRY(st, Esys_FlushContext(st.esys, ek.handle));
  } else {
    Esys_TR_Close(st.esys, &ek.handle);
  }
  ek.handle = ESYS_TR_NONE;
}

TPM2B_DATA toData(const Bytes& b, const char* what) {
  TPM2B_DATA d;
  std::memset(&d, 0, sizeof(d));
  if (b.size() > sizeof(d.buffer)) throwInvalid(what, "qualifyingData is longer than the TPM accepts (64 bytes)");
  d.size = static_cast<UINT16>(b.size());
  std::copy(b.begin(), b.end(), d.buffer);
  return d;
}

Value attestResult(const TPM2B_ATTEST& attest, const TPMT_SIGNATURE& sig) {
  Value out = Value::object();
  out.set("attest", Value::bytesOf(Bytes(attest.attestationData, attest.attestationData + attest.size)));
  out.set("signature", Value::bytesOf(marshal(Tss2_MU_TPMT_SIGNATURE_Marshal, sig, "Tss2_MU_TPMT_SIGNATURE_Marshal")));
  return out;
}

Bytes leftPad(const uint8_t* p, size_t n, size_t width) {
  Bytes out(width > n ? width - n : 0, 0);
  out.insert(out.end(), p, p + n);
  return out;
}

}  // namespace

void openTpm(State& st, const std::string& tcti, bool flushTransients, bool cacheSrk) {
  st.cacheSrk = cacheSrk;
  GTPM_CALL(st, "Tss2_TctiLdr_Initialize",
            Tss2_TctiLdr_Initialize(tcti.empty() ? nullptr : tcti.c_str(), &st.tcti));
  GTPM_CALL(st, "Esys_Initialize", Esys_Initialize(&st.esys, st.tcti, nullptr));
  // A simulator may still need TPM2_Startup; a started TPM answers TPM_RC_INITIALIZE.
  const TSS2_RC rc = GTPM_TRY(st, Esys_Startup(st.esys, TPM2_SU_CLEAR));
  if (rc != TSS2_RC_SUCCESS && !isTpmAnswer(rc)) {
    throw Failure{rc, "TPM2_Startup", "tpm", ""};
  }
  if (flushTransients) {
    dropSrk(st);
    TSS2_SYS_CONTEXT* sys = nullptr;
    GTPM_CALL(st, "Esys_GetSysContext", Esys_GetSysContext(st.esys, &sys));
    for (TPM2_HANDLE first : {TPM2_TRANSIENT_FIRST, TPM2_LOADED_SESSION_FIRST}) {
      for (TPM2_HANDLE h : loadedHandles(st, first)) {
        GTPM_TRY(st, Tss2_Sys_FlushContext(sys, h));
      }
    }
  }
  // Prove the TPM answers now, so open() fails instead of the first real command.
  tpmProperty(st, TPM2_PT_MANUFACTURER);
  st.opened = true;
}

void closeTpm(State& st) { st.shutdown(); }

Value info(State& st) {
  Value props = Value::array();
  TPMI_YES_NO more = 1;
  TPM2_PT next = TPM2_PT_FIXED;
  while (more && next < TPM2_PT_VAR) {
    TPMS_CAPABILITY_DATA* raw = nullptr;
    GTPM_CALL(st, "TPM2_GetCapability",
              Esys_GetCapability(st.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES, next,
                                 TPM2_MAX_TPM_PROPERTIES, &more, &raw));
    EsysPtr<TPMS_CAPABILITY_DATA> cap(raw);
    const auto& p = cap->data.tpmProperties;
    if (p.count == 0) break;
    for (uint32_t i = 0; i < p.count; i++) {
      if (p.tpmProperty[i].property >= TPM2_PT_VAR) {
        more = 0;
        break;
      }
      Value pair = Value::array();
      pair.items.push_back(Value::number(p.tpmProperty[i].property));
      pair.items.push_back(Value::number(p.tpmProperty[i].value));
      props.items.push_back(std::move(pair));
    }
    next = p.tpmProperty[p.count - 1].property + 1;
  }
  return props;
}

Value getRandom(State& st, uint32_t n) {
  Bytes out;
  out.reserve(n);
  while (out.size() < n) {
    const uint32_t want = std::min<uint32_t>(static_cast<uint32_t>(n - out.size()), sizeof(TPMU_HA));
    TPM2B_DIGEST* raw = nullptr;
    GTPM_CALL(st, "TPM2_GetRandom",
              Esys_GetRandom(st.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, static_cast<UINT16>(want), &raw));
    EsysPtr<TPM2B_DIGEST> r(raw);
    if (r->size == 0) throw Failure{0, "TPM2_GetRandom", "tpm", "TPM returned no random bytes"};
    out.insert(out.end(), r->buffer, r->buffer + std::min<size_t>(r->size, n - out.size()));
  }
  return Value::bytesOf(std::move(out));
}

Value pcrRead(State& st, const std::vector<PcrSel>& sel) { return readPcrs(st, sel); }

Value pcrExtend(State& st, uint32_t index, const Bytes& digest) {
  if (index > 23) throwInvalid("TPM2_PCR_Extend", "PCR index out of range (0..23)");
  if (digest.size() != 32) throwInvalid("TPM2_PCR_Extend", "digest must be 32 bytes (SHA-256)");
  TPML_DIGEST_VALUES values;
  std::memset(&values, 0, sizeof(values));
  values.count = 1;
  values.digests[0].hashAlg = TPM2_ALG_SHA256;
  std::copy(digest.begin(), digest.end(), values.digests[0].digest.sha256);
  GTPM_CALL(st, "TPM2_PCR_Extend",
            Esys_PCR_Extend(st.esys, ESYS_TR_PCR0 + index, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &values));
  return Value::null();
}

Value ekPublic(State& st, KeyAlg alg) {
  Ek ek = acquireEk(st, alg);
  Value out = Value::object();
  try {
    out.set("public", Value::bytesOf(publicBytes(ek.pub)));
    out.set("handle", Value::number(ek.persistentHandle));
  } catch (...) {
    releaseEk(st, ek);
    throw;
  }
  releaseEk(st, ek);
  return out;
}

Value nvReadFirst(State& st, const std::vector<uint32_t>& indices) {
  for (uint32_t index : indices) {
    if ((index >> 24) != TPM2_HT_NV_INDEX) throwInvalid("TPM2_NV_Read", "not an NV index handle");
    ESYS_TR nv = ESYS_TR_NONE;
    const TSS2_RC rc =
        GTPM_TRY(st, Esys_TR_FromTPMPublic(st.esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv));
    if (rc != TSS2_RC_SUCCESS) {
      // Undefined index: the TPM (or ESYS on its behalf) says no. Try the next one.
      if (isTpmAnswer(rc) || (rc & TSS2_RC_LAYER_MASK) == TSS2_ESAPI_RC_LAYER) continue;
      throw Failure{rc, "Esys_TR_FromTPMPublic(NV)", "tpm", ""};
    }
    CloseGuard closeNv(st, nv);
    TPM2B_NV_PUBLIC* rawPub = nullptr;
    GTPM_CALL(st, "TPM2_NV_ReadPublic",
              Esys_NV_ReadPublic(st.esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &rawPub, nullptr));
    EsysPtr<TPM2B_NV_PUBLIC> nvPub(rawPub);
    const TPMA_NV attrs = nvPub->nvPublic.attributes;
    if ((attrs & TPMA_NV_WRITTEN) == 0) continue;
    const ESYS_TR auth = (attrs & TPMA_NV_AUTHREAD) != 0 ? nv : ESYS_TR_RH_OWNER;
    const uint32_t size = nvPub->nvPublic.dataSize;
    const uint32_t chunk = std::max<uint32_t>(1, std::min<uint32_t>(tpmProperty(st, TPM2_PT_NV_BUFFER_MAX),
                                                                     TPM2_MAX_NV_BUFFER_SIZE));
    Bytes data;
    data.reserve(size);
    while (data.size() < size) {
      const uint32_t n = std::min<uint32_t>(chunk, size - static_cast<uint32_t>(data.size()));
      TPM2B_MAX_NV_BUFFER* raw = nullptr;
      GTPM_CALL(st, "TPM2_NV_Read",
                Esys_NV_Read(st.esys, auth, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                             static_cast<UINT16>(n), static_cast<UINT16>(data.size()), &raw));
      EsysPtr<TPM2B_MAX_NV_BUFFER> part(raw);
      if (part->size == 0) throw Failure{0, "TPM2_NV_Read", "tpm", "TPM returned an empty NV chunk"};
      data.insert(data.end(), part->buffer, part->buffer + part->size);
    }
    Value out = Value::object();
    out.set("index", Value::number(index));
    out.set("data", Value::bytesOf(std::move(data)));
    return out;
  }
  return Value::null();
}

Value createKey(State& st, bool restricted, KeyAlg alg, uint32_t persistAt) {
  if (alg == KeyAlg::EccP384) throwInvalid("createKey", "keys are RSA-2048 or ECC P-256");
  if (persistAt != 0 && !isPersistentHandle(persistAt)) {
    throwInvalid("createKey", "persistAt must be a persistent handle (0x81000000..0x81FFFFFF)");
  }
  const TPM2B_PUBLIC tmpl = restricted ? akTemplate(alg) : appKeyTemplate(alg);
  TPM2B_SENSITIVE_CREATE sens;
  std::memset(&sens, 0, sizeof(sens));
  TPM2B_DATA outside;
  std::memset(&outside, 0, sizeof(outside));
  TPML_PCR_SELECTION pcrs;
  std::memset(&pcrs, 0, sizeof(pcrs));
  const ESYS_TR parent = srk(st);
  TPM2B_PRIVATE* rawPriv = nullptr;
  TPM2B_PUBLIC* rawPub = nullptr;
  GTPM_CALL(st, "TPM2_Create",
            Esys_Create(st.esys, parent, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside,
                        &pcrs, &rawPriv, &rawPub, nullptr, nullptr, nullptr));
  EsysPtr<TPM2B_PRIVATE> priv(rawPriv);
  EsysPtr<TPM2B_PUBLIC> pub(rawPub);
  KeyRef ref;
  ref.blob = makeBlob(*priv, *pub);
  UsableKey key(st, ref, "key");
  Value out = Value::object();
  out.set("public", Value::bytesOf(publicBytes(*pub)));
  out.set("name", Value::bytesOf(key.name()));
  out.set("blob", Value::bytesOf(ref.blob));
  if (persistAt != 0) {
    ESYS_TR persisted = ESYS_TR_NONE;
    GTPM_CALL(st, "TPM2_EvictControl",
              Esys_EvictControl(st.esys, ESYS_TR_RH_OWNER, key.handle(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                ESYS_TR_NONE, persistAt, &persisted));
    Esys_TR_Close(st.esys, &persisted);
    out.set("handle", Value::number(persistAt));
  }
  return out;
}

Value loadKey(State& st, const Bytes& blob) {
  KeyRef ref;
  ref.blob = blob;
  TPM2B_PRIVATE priv;
  TPM2B_PUBLIC pub;
  parseBlob(blob, priv, pub);
  UsableKey key(st, ref, "key");
  Value out = Value::object();
  out.set("public", Value::bytesOf(publicBytes(pub)));
  out.set("name", Value::bytesOf(key.name()));
  out.set("blob", Value::bytesOf(blob));
  return out;
}

Value persistKey(State& st, const Bytes& blob, uint32_t handle) {
  if (!isPersistentHandle(handle)) throwInvalid("persist", "handle must be in 0x81000000..0x81FFFFFF");
  KeyRef ref;
  ref.blob = blob;
  UsableKey key(st, ref, "key");
  ESYS_TR persisted = ESYS_TR_NONE;
  GTPM_CALL(st, "TPM2_EvictControl",
            Esys_EvictControl(st.esys, ESYS_TR_RH_OWNER, key.handle(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                              handle, &persisted));
  Esys_TR_Close(st.esys, &persisted);
  return Value::number(handle);
}

Value evictKey(State& st, uint32_t handle) {
  if (!isPersistentHandle(handle)) throwInvalid("evict", "handle must be in 0x81000000..0x81FFFFFF");
  ESYS_TR h = ESYS_TR_NONE;
  GTPM_CALL(st, "Esys_TR_FromTPMPublic",
            Esys_TR_FromTPMPublic(st.esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &h));
  ESYS_TR out = ESYS_TR_NONE;
  const TSS2_RC rc = GTPM_TRY(st, Esys_EvictControl(st.esys, ESYS_TR_RH_OWNER, h, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                                    ESYS_TR_NONE, handle, &out));
  // ESYS keeps the metadata (including the Name) of the evicted object until it is closed; a stale
  // entry would make a later Esys_TR_FromTPMPublic of a new key at the same handle fail.
  Esys_TR_Close(st.esys, &h);
  if (rc != TSS2_RC_SUCCESS) throw Failure{rc, "TPM2_EvictControl", "tpm", ""};
  return Value::null();
}


namespace {
/** TPM_ALG_NULL signing scheme: the TPM signs with the scheme fixed in the key's template. */
TPMT_SIG_SCHEME keysOwnScheme() {
  TPMT_SIG_SCHEME scheme;
  std::memset(&scheme, 0, sizeof(scheme));
  scheme.scheme = TPM2_ALG_NULL;
  return scheme;
}
}  // namespace

Value sign(State& st, const KeyRef& ref, const Bytes& digest) {
  if (digest.size() != 32) throwInvalid("TPM2_Sign", "digest must be 32 bytes (SHA-256)");
  UsableKey key(st, ref, "key");
  TPM2B_DIGEST d;
  std::memset(&d, 0, sizeof(d));
  d.size = 32;
  std::copy(digest.begin(), digest.end(), d.buffer);
  const TPMT_SIG_SCHEME scheme = keysOwnScheme();
  TPMT_TK_HASHCHECK ticket;
  std::memset(&ticket, 0, sizeof(ticket));
  ticket.tag = TPM2_ST_HASHCHECK;
  ticket.hierarchy = TPM2_RH_NULL;
  TPMT_SIGNATURE* raw = nullptr;
  GTPM_CALL(st, "TPM2_Sign",
            Esys_Sign(st.esys, key.handle(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &d, &scheme, &ticket,
                      &raw));
  EsysPtr<TPMT_SIGNATURE> sig(raw);
  switch (sig->sigAlg) {
    case TPM2_ALG_ECDSA: {
      const auto& e = sig->signature.ecdsa;
      if (e.signatureR.size > 32 || e.signatureS.size > 32) {
        throw Failure{0, "TPM2_Sign", "tpm", "ECDSA signature component longer than 32 bytes"};
      }
      Bytes rs = leftPad(e.signatureR.buffer, e.signatureR.size, 32);
      const Bytes s = leftPad(e.signatureS.buffer, e.signatureS.size, 32);
      rs.insert(rs.end(), s.begin(), s.end());
      return Value::bytesOf(std::move(rs));
    }
    case TPM2_ALG_RSASSA: {
      const auto& r = sig->signature.rsassa.sig;
      return Value::bytesOf(Bytes(r.buffer, r.buffer + r.size));
    }
    default:
      throw Failure{0, "TPM2_Sign", "tpm", "unexpected signature scheme from the TPM"};
  }
}

Value certify(State& st, const KeyRef& objectRef, const KeyRef& akRef, const Bytes& qualifyingData) {
  const TPM2B_DATA qd = toData(qualifyingData, "TPM2_Certify");
  UsableKey object(st, objectRef, "object");
  UsableKey ak(st, akRef, "ak");
  const TPMT_SIG_SCHEME scheme = keysOwnScheme();
  TPM2B_ATTEST* rawAttest = nullptr;
  TPMT_SIGNATURE* rawSig = nullptr;
  GTPM_CALL(st, "TPM2_Certify",
            Esys_Certify(st.esys, object.handle(), ak.handle(), ESYS_TR_PASSWORD, ESYS_TR_PASSWORD, ESYS_TR_NONE, &qd,
                         &scheme, &rawAttest, &rawSig));
  EsysPtr<TPM2B_ATTEST> attest(rawAttest);
  EsysPtr<TPMT_SIGNATURE> sig(rawSig);
  return attestResult(*attest, *sig);
}

Value quote(State& st, const KeyRef& akRef, const std::vector<PcrSel>& sel, const Bytes& qualifyingData) {
  const TPM2B_DATA qd = toData(qualifyingData, "TPM2_Quote");
  const TPML_PCR_SELECTION pcrSel = toSelection(sel);
  UsableKey ak(st, akRef, "ak");
  const TPMT_SIG_SCHEME scheme = keysOwnScheme();
  TPM2B_ATTEST* rawAttest = nullptr;
  TPMT_SIGNATURE* rawSig = nullptr;
  GTPM_CALL(st, "TPM2_Quote",
            Esys_Quote(st.esys, ak.handle(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qd, &scheme, &pcrSel,
                       &rawAttest, &rawSig));
  EsysPtr<TPM2B_ATTEST> attest(rawAttest);
  EsysPtr<TPMT_SIGNATURE> sig(rawSig);
  Value out = attestResult(*attest, *sig);
  // Read the quoted PCRs right away under the same lock; the caller compares their
  // digest with the one in the quote and retries if another TPM user extended a PCR.
  out.set("pcrs", readPcrs(st, sel));
  return out;
}

Value activateCredential(State& st, const KeyRef& akRef, KeyAlg ekAlg, const Bytes& credentialBlob,
                         const Bytes& encryptedSecret) {
  TPM2B_ID_OBJECT cred;
  std::memset(&cred, 0, sizeof(cred));
  size_t off = 0;
  if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(credentialBlob.data(), credentialBlob.size(), &off, &cred) !=
          TSS2_RC_SUCCESS ||
      off != credentialBlob.size()) {
    throwInvalid("TPM2_ActivateCredential", "credentialBlob is not a well-formed TPM2B_ID_OBJECT");
  }
  TPM2B_ENCRYPTED_SECRET secret;
  std::memset(&secret, 0, sizeof(secret));
  off = 0;
  if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(encryptedSecret.data(), encryptedSecret.size(), &off, &secret) !=
          TSS2_RC_SUCCESS ||
      off != encryptedSecret.size()) {
    throwInvalid("TPM2_ActivateCredential", "encryptedSecret is not a well-formed TPM2B_ENCRYPTED_SECRET");
  }
  UsableKey ak(st, akRef, "ak");
  Ek ek = acquireEk(st, ekAlg);
  ESYS_TR session = ESYS_TR_NONE;
  ESYS_TR encSession = ESYS_TR_NONE;
  try {
    TPMT_SYM_DEF sym;
    std::memset(&sym, 0, sizeof(sym));
    sym.algorithm = TPM2_ALG_NULL;
    // The EK's policy digest is computed with its nameAlg; the session must match.
    // (An EK with userWithAuth, as the TCG high-range templates have, takes its empty authValue instead.)
    const bool ekPolicy = (ek.pub.publicArea.objectAttributes & TPMA_OBJECT_USERWITHAUTH) == 0;
    if (ekPolicy) {
    GTPM_CALL(st, "TPM2_StartAuthSession",
              Esys_StartAuthSession(st.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                    nullptr, TPM2_SE_POLICY, &sym, ek.pub.publicArea.nameAlg, &session));
    // Keep the session alive after use so it is flushed exactly once, below.
    GTPM_CALL(st, "Esys_TRSess_SetAttributes",
              Esys_TRSess_SetAttributes(st.esys, session, TPMA_SESSION_CONTINUESESSION, 0xff));
    TPM2B_TIMEOUT* rawTimeout = nullptr;
    TPMT_TK_AUTH* rawTicket = nullptr;
    GTPM_CALL(st, "TPM2_PolicySecret",
              Esys_PolicySecret(st.esys, ESYS_TR_RH_ENDORSEMENT, session, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                ESYS_TR_NONE, nullptr, nullptr, nullptr, 0, &rawTimeout, &rawTicket));
    EsysPtr<TPM2B_TIMEOUT> timeout(rawTimeout);
    EsysPtr<TPMT_TK_AUTH> ticket(rawTicket);
    }
    // The recovered secret is what proves AK and EK live together; keep it off the bus in clear:
    // a session salted with the EK encrypts (and HMACs) the response parameter.
    TPMT_SYM_DEF aes;
    std::memset(&aes, 0, sizeof(aes));
    aes.algorithm = TPM2_ALG_AES;
    aes.keyBits.aes = 128;
    aes.mode.aes = TPM2_ALG_CFB;
    GTPM_CALL(st, "TPM2_StartAuthSession(salted)",
              Esys_StartAuthSession(st.esys, ek.handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                    nullptr, TPM2_SE_HMAC, &aes, TPM2_ALG_SHA256, &encSession));
    GTPM_CALL(st, "Esys_TRSess_SetAttributes",
              Esys_TRSess_SetAttributes(st.esys, encSession, TPMA_SESSION_CONTINUESESSION | TPMA_SESSION_ENCRYPT,
                                        0xff));
    TPM2B_DIGEST* rawCert = nullptr;
    GTPM_CALL(st, "TPM2_ActivateCredential",
              Esys_ActivateCredential(st.esys, ak.handle(), ek.handle, ESYS_TR_PASSWORD,
                                      ekPolicy ? session : ESYS_TR_PASSWORD, encSession, &cred,
                                      &secret, &rawCert));
    EsysPtr<TPM2B_DIGEST> certInfo(rawCert);
    Bytes out(certInfo->buffer, certInfo->buffer + certInfo->size);
    if (session != ESYS_TR_NONE) GTPM_TRY(st, Esys_FlushContext(st.esys, session));
    session = ESYS_TR_NONE;
    GTPM_TRY(st, Esys_FlushContext(st.esys, encSession));
    encSession = ESYS_TR_NONE;
    releaseEk(st, ek);
    return Value::bytesOf(std::move(out));
  } catch (...) {
    if (session != ESYS_TR_NONE) GTPM_TRY(st, Esys_FlushContext(st.esys, session));
    if (encSession != ESYS_TR_NONE) GTPM_TRY(st, Esys_FlushContext(st.esys, encSession));
    releaseEk(st, ek);
    throw;
  }
}

}  // namespace gtpm
