"""Dev support shared by the tests, the bench, the scripts and the local stack; never deployed to Lambda."""
