"""Pure content transforms: chunking, block compression, manifests, content types.

Nothing here touches the disk, the network or the clock (see tests/unit/test_purity.py).
"""

from hashmesh.content.chunker import Chunker
from hashmesh.content.compress import BlockCodec
from hashmesh.content.manifest import DirManifest, Entry, FileManifest, Link, TreeBuilder

__all__ = ["BlockCodec", "Chunker", "DirManifest", "Entry", "FileManifest", "Link", "TreeBuilder"]
