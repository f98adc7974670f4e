"""Vonage Messages API (messenger channel): signed callbacks, parsing and sending."""
