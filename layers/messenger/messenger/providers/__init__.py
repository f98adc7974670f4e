"""One sub-package per provider; a provider module knows nothing of the other provider."""
