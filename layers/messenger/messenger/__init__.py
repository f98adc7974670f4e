"""Domain package shared by the webhook and reply Lambdas (deployed as a layer)."""
