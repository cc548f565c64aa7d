"""The object service (buckets, objects, put modes) and its dfstore HTTP edge."""
