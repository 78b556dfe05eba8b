"""The contracts' caps that input is checked against before anything is written, in a module that
imports nothing: a process that only reads input (the import's reader child) checks them without
loading web3 and the clients."""

# LoyaltyPoints.MAX_EARN: the most points one earn (one event) carries
MAX_EARN = 1_000_000_000
