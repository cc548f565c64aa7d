"""S3 operation handlers: parse, call one service method, render."""
