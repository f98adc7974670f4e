"""Meta Messenger Platform: webhook signature, event parsing and the Send API."""
