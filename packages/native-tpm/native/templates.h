// Public-area templates for the keys this addon creates. All are deterministic so a
// primary created from them (SRK, EK) is the same key every time on the same TPM.
#pragma once

#include <tss2/tss2_tpm2_types.h>

namespace gtpm {

// EccP384 exists only for endorsement keys (swtpm's ECC EK is P-384).
enum class KeyAlg { Rsa2048 = 1, EccP256 = 2, EccP384 = 3 };

// Storage root key: ECC P-256 restricted decryption primary in the owner hierarchy
// (TCG Provisioning Guidance SRK template, empty unique).
TPM2B_PUBLIC srkTemplate();

// Attestation key: restricted signing key (RSASSA-SHA256 or ECDSA-SHA256).
TPM2B_PUBLIC akTemplate(KeyAlg alg);

// Application signing key: unrestricted signing key (RSASSA-SHA256 or ECDSA-SHA256).
TPM2B_PUBLIC appKeyTemplate(KeyAlg alg);

// TCG EK Credential Profile templates: L-1 (RSA 2048) and L-2 (ECC P-256) with the standard
// PolicySecret(TPM_RH_ENDORSEMENT) authPolicy, and H-3 (ECC P-384, SHA-384, userWithAuth, PolicyB).
TPM2B_PUBLIC ekTemplate(KeyAlg alg);

}  // namespace gtpm
