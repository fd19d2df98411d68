"""What the test tiers share: paths, the Postfix model's functions, its parser, the oracle container."""
