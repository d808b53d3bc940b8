"""Ingestion: scan → extract → describe → embed → store."""
