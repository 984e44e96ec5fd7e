"""Peer measurements (Tahoe-LAFS, PyPI kademlia) for hashmesh's network benchmark."""
