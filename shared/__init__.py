"""Renkei shared domain: model, documents, crypto, wire formats."""
