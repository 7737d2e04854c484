"""Load tests for the registry's report ingest: fleet generation, locust users, runner, bench."""
