#include "templates.h"

#include <cstring>

namespace gtpm {

namespace {

// TPM2_PolicySecret(TPM_RH_ENDORSEMENT) digest, SHA-256 (TCG EK Credential Profile, "Policy A").
const uint8_t kEkPolicyA[32] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC,
                                0x8D, 0x46, 0xA5, 0xD7, 0x24, 0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52,
                                0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA};

// PolicyB SHA-384 of the TCG high-range EK templates (PolicyOR of PolicySecret(endorsement) and an
// NV-based branch), as in swtpm's ECC P-384 EK.
const uint8_t kEkPolicyBSha384[48] = {
    0xB2, 0x6E, 0x7D, 0x28, 0xD1, 0x1A, 0x50, 0xBC, 0x53, 0xD8, 0x82, 0xBC, 0xF5, 0xFD, 0x3A, 0x1A,
    0x07, 0x41, 0x48, 0xBB, 0x35, 0xD3, 0xB4, 0xE4, 0xCB, 0x1C, 0x0A, 0xD9, 0xBD, 0xE4, 0x19, 0xCA,
    0xCB, 0x47, 0xBA, 0x09, 0x69, 0x96, 0x46, 0x15, 0x0F, 0x9F, 0xC0, 0x00, 0xF3, 0xF8, 0x0E, 0x12};

TPM2B_PUBLIC base(TPMI_ALG_PUBLIC type, TPMA_OBJECT attrs) {
  TPM2B_PUBLIC p;
  std::memset(&p, 0, sizeof(p));
  p.publicArea.type = type;
  p.publicArea.nameAlg = TPM2_ALG_SHA256;
  p.publicArea.objectAttributes = attrs;
  return p;
}

TPM2B_PUBLIC signingKey(KeyAlg alg, TPMA_OBJECT attrs) {
  if (alg == KeyAlg::Rsa2048) {
    TPM2B_PUBLIC p = base(TPM2_ALG_RSA, attrs);
    auto& rsa = p.publicArea.parameters.rsaDetail;
    rsa.symmetric.algorithm = TPM2_ALG_NULL;
    rsa.scheme.scheme = TPM2_ALG_RSASSA;
    rsa.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
    rsa.keyBits = 2048;
    rsa.exponent = 0;  // default 65537
    return p;
  }
  TPM2B_PUBLIC p = base(TPM2_ALG_ECC, attrs);
  auto& ecc = p.publicArea.parameters.eccDetail;
  ecc.symmetric.algorithm = TPM2_ALG_NULL;
  ecc.scheme.scheme = TPM2_ALG_ECDSA;
  ecc.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  ecc.curveID = TPM2_ECC_NIST_P256;
  ecc.kdf.scheme = TPM2_ALG_NULL;
  return p;
}

}  // namespace

TPM2B_PUBLIC srkTemplate() {
  TPM2B_PUBLIC p = base(TPM2_ALG_ECC, TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                          TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT);
  auto& ecc = p.publicArea.parameters.eccDetail;
  ecc.symmetric.algorithm = TPM2_ALG_AES;
  ecc.symmetric.keyBits.aes = 128;
  ecc.symmetric.mode.aes = TPM2_ALG_CFB;
  ecc.scheme.scheme = TPM2_ALG_NULL;
  ecc.curveID = TPM2_ECC_NIST_P256;
  ecc.kdf.scheme = TPM2_ALG_NULL;
  return p;
}

TPM2B_PUBLIC akTemplate(KeyAlg alg) {
  return signingKey(alg, TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                             TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT);
}

TPM2B_PUBLIC appKeyTemplate(KeyAlg alg) {
  return signingKey(alg, TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                             TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_SIGN_ENCRYPT);
}

TPM2B_PUBLIC ekTemplate(KeyAlg alg) {
  if (alg == KeyAlg::EccP384) {
    TPM2B_PUBLIC p = base(TPM2_ALG_ECC, TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                            TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                            TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED |
                                            TPMA_OBJECT_DECRYPT);
    p.publicArea.nameAlg = TPM2_ALG_SHA384;
    p.publicArea.authPolicy.size = sizeof(kEkPolicyBSha384);
    std::memcpy(p.publicArea.authPolicy.buffer, kEkPolicyBSha384, sizeof(kEkPolicyBSha384));
    auto& ecc = p.publicArea.parameters.eccDetail;
    ecc.symmetric.algorithm = TPM2_ALG_AES;
    ecc.symmetric.keyBits.aes = 256;
    ecc.symmetric.mode.aes = TPM2_ALG_CFB;
    ecc.scheme.scheme = TPM2_ALG_NULL;
    ecc.curveID = TPM2_ECC_NIST_P384;
    ecc.kdf.scheme = TPM2_ALG_NULL;
    return p;  // high-range templates have an empty unique field
  }
  const TPMA_OBJECT attrs = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                            TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  TPM2B_PUBLIC p = base(alg == KeyAlg::Rsa2048 ? TPM2_ALG_RSA : TPM2_ALG_ECC, attrs);
  p.publicArea.authPolicy.size = sizeof(kEkPolicyA);
  std::memcpy(p.publicArea.authPolicy.buffer, kEkPolicyA, sizeof(kEkPolicyA));
  if (alg == KeyAlg::Rsa2048) {
    auto& rsa = p.publicArea.parameters.rsaDetail;
    rsa.symmetric.algorithm = TPM2_ALG_AES;
    rsa.symmetric.keyBits.aes = 128;
    rsa.symmetric.mode.aes = TPM2_ALG_CFB;
    rsa.scheme.scheme = TPM2_ALG_NULL;
    rsa.keyBits = 2048;
    rsa.exponent = 0;
    p.publicArea.unique.rsa.size = 256;  // 256 zero bytes, as the template requires
  } else {
    auto& ecc = p.publicArea.parameters.eccDetail;
    ecc.symmetric.algorithm = TPM2_ALG_AES;
    ecc.symmetric.keyBits.aes = 128;
    ecc.symmetric.mode.aes = TPM2_ALG_CFB;
    ecc.scheme.scheme = TPM2_ALG_NULL;
    ecc.curveID = TPM2_ECC_NIST_P256;
    ecc.kdf.scheme = TPM2_ALG_NULL;
    p.publicArea.unique.ecc.x.size = 32;
    p.publicArea.unique.ecc.y.size = 32;
  }
  return p;
}

}  // namespace gtpm
