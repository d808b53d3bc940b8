"""Adapters to storage and AWS services."""
