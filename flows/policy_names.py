"""Names and defaults `sageserve evaluate` lists in its options: the policies it compares and the
sweep's planning quantiles. Kept free of imports so the command line can show them without
loading the simulator, the ILP and the forecasters."""

POLICIES = ("reactive", "siloed", "lt-i", "lt-u", "lt-ua", "lt-f", "oracle")
DEFAULT_QUANTILES = (0.5, 0.9, 0.95)
