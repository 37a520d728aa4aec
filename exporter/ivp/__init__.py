"""Kyverno ``ImageValidatingPolicy`` / ``NamespacedImageValidatingPolicy``: model, parsing, CEL, evaluation.

Imported only where such policies are loaded or evaluated: the CEL engine stays off ``trustwatch verify``.
"""
