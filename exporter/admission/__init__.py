"""The admission webhook: AdmissionReview in, decision (allow, deny message, JSONPatch, warnings) out."""
