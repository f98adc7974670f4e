"""Docker-free local stack: DynamoDB Local, moto, the template's routes, a stream poller and a sandbox."""
