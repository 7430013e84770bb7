// The TPM commands, as plain functions over State. Each runs on a worker thread
// with State::mu held, throws Failure on error and returns a Value for JavaScript.
#pragma once

#include <string>
#include <vector>

#include "state.h"
#include "templates.h"

namespace gtpm {

// A key to use: a persistent handle (checked against `name` when given) or else a blob
// (TPM2B_PRIVATE || TPM2B_PUBLIC, loaded under the SRK for the duration of one command).
struct KeyRef {
  Bytes blob;
  Bytes name;
  uint32_t handle = 0;
};

// One bank of a PCR selection.
struct PcrSel {
  TPMI_ALG_HASH hashAlg = TPM2_ALG_SHA256;
  std::vector<uint32_t> pcrs;
};

// Flushes the storage root key if loaded, keeping its saved context for the next command.
void parkSrk(State& st);
// Forgets the storage root key entirely (loaded handle and saved context).
void dropSrk(State& st);

void openTpm(State& st, const std::string& tcti, bool flushTransients, bool cacheSrk);
void closeTpm(State& st);
Value info(State& st);
Value getRandom(State& st, uint32_t n);
Value pcrRead(State& st, const std::vector<PcrSel>& sel);
Value pcrExtend(State& st, uint32_t index, const Bytes& digest);
Value ekPublic(State& st, KeyAlg alg);
Value nvReadFirst(State& st, const std::vector<uint32_t>& indices);
Value createKey(State& st, bool restricted, KeyAlg alg, uint32_t persistAt);
Value loadKey(State& st, const Bytes& blob);
Value persistKey(State& st, const Bytes& blob, uint32_t handle);
Value evictKey(State& st, uint32_t handle);
Value sign(State& st, const KeyRef& key, const Bytes& digest);
Value certify(State& st, const KeyRef& object, const KeyRef& ak, const Bytes& qualifyingData);
Value quote(State& st, const KeyRef& ak, const std::vector<PcrSel>& sel, const Bytes& qualifyingData);
Value activateCredential(State& st, const KeyRef& ak, KeyAlg ekAlg, const Bytes& credentialBlob,
                         const Bytes& encryptedSecret);

}  // namespace gtpm
