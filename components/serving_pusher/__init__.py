"""ServingPusher: the stock Pusher with its destination as two plain strings."""
