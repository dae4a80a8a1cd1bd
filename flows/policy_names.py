"""Names of the policies `sageserve evaluate` compares. Kept free of imports so the command line
can list them without loading the simulator, the ILP and the forecasters."""

POLICIES = ("reactive", "siloed", "lt-i", "lt-u", "lt-ua", "oracle")
