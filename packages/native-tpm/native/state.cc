#include "state.h"

namespace gtpm {

void throwInvalid(const std::string& what, const std::string& message) {
  throw Failure{0, what, "invalid_argument", message};
}

void State::shutdown() {
  if (esys != nullptr) {
    if (srk != ESYS_TR_NONE) {
      Esys_FlushContext(esys, srk);
      srk = ESYS_TR_NONE;
    }
    if (srkContext != nullptr) {
      Esys_Free(srkContext);
      srkContext = nullptr;
    }
    Esys_Finalize(&esys);
    esys = nullptr;
  }
  if (tcti != nullptr) {
    Tss2_TctiLdr_Finalize(&tcti);
    tcti = nullptr;
  }
  closed = true;
}

State::~State() {
  // Reached when a Tpm was garbage-collected without close(); no worker can hold the
  // state any more (each one owns a shared_ptr), so no lock is needed.
  shutdown();
}

}  // namespace gtpm
