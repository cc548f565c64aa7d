"""The P2P layer: pieces, tasks, peers, schedulers and the manager. Knows nothing of buckets or S3."""
