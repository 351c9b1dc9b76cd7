"""The persistent index of a video library: one directory holding a DuckDB file, arrays and FAISS caches.

The path of data through the package:

    write   SegmentData --rows.py--> VideoRows --commit.py--> array files (append, fsync)
                                                          --> one DuckDB transaction (schema.py)
    read    open --snapshot.py--> meta, videos, segments + memory-mapped arrays --> load_* (store.py)
                                                                                --> search_* (search.py)
    merge   shard.export_video --> VideoRows --> out.import_videos (merge.py)

`store.IndexStore` is the API; `layout.py` names every file, `arrays.py` reads and writes the array files,
`records.py` holds the plain records callers exchange with the store. This package imports nothing else
from salova except `salova.errors`.
"""
