"""Load balancing of the PE streams: which PE walks which Winograd position, and each PE's segment lengths.

Rows are split over the S PE clusters by k mod S; within cluster s, positions are
assigned to its P/S PEs by LPT (longest processing time first) on the non-zeros of the
cluster's rows. The packer (:mod:`winnow.hw.packer`) lays the streams out this way and the
cycle model (:mod:`winnow.hw.cycle_model`) reads the segment lengths without packing.
"""

from __future__ import annotations

import heapq

import numpy as np

from winnow.hw.config import AccelConfig


def balance_positions(loads: np.ndarray, pes: int) -> np.ndarray:
    """LPT assignment of positions (with ``loads`` entries each) to ``pes`` PEs → owner per position.

    Ties go to the PE with the fewest positions, then the lowest index, so positions
    without entries still spread over the PEs.
    """
    loads = np.asarray(loads, dtype=np.int64)
    owner = np.zeros(loads.size, dtype=np.int64)
    heap = [(0, 0, i) for i in range(pes)]  # (total, count, PE): the heap's top is the min of that key
    values = loads.tolist()
    for p in lpt_order(loads):
        total, count, j = heapq.heappop(heap)
        owner[p] = j
        heapq.heappush(heap, (total + values[p], count + 1, j))
    return owner


def block_rows(cfg: AccelConfig, out_channels: int) -> list[int]:
    """Rows K_b of each output-channel block of a layer with ``out_channels`` rows."""
    kb = cfg.k_block
    return [min(kb, out_channels - b * kb) for b in range(-(-out_channels // kb))]


def assign_owners(cfg: AccelConfig, counts: np.ndarray) -> np.ndarray:
    """(clusters, positions) owner: PE index within the cluster, LPT on the cluster's rows per position.

    ``counts`` is (positions, K): the stream entries of each row (p, k).
    """
    S, K = cfg.clusters, counts.shape[1]
    owner = np.zeros((S, cfg.positions), dtype=np.int64)
    for s in range(S):
        owner[s] = balance_positions(counts[:, s:K:S].sum(axis=1), cfg.pes_per_cluster)
    return owner


def lpt_order(loads: np.ndarray) -> list[int]:
    return np.lexsort((np.arange(loads.size), -np.asarray(loads))).tolist()  # by load descending, then index


def segment_lengths(cfg: AccelConfig, counts: np.ndarray) -> np.ndarray:
    """(pes, blocks) entries of each PE's segment per block for a layer with ``counts`` (positions, K).

    Equal to the lengths :func:`pack_layer` produces (a segment without entries holds one
    end-of-block marker).
    """
    counts = np.asarray(counts, dtype=np.int64)
    S, K = cfg.clusters, counts.shape[1]
    owner = assign_owners(cfg, counts)
    rows = block_rows(cfg, K)
    seg = np.zeros((cfg.pes, len(rows)), dtype=np.int64)
    for b in range(len(rows)):
        lo = b * cfg.k_block
        for s in range(S):
            per_pos = counts[:, lo + s:lo + rows[b]:S].sum(axis=1)
            seg[s * cfg.pes_per_cluster:(s + 1) * cfg.pes_per_cluster, b] = np.bincount(
                owner[s], weights=per_pos, minlength=cfg.pes_per_cluster)
    return np.maximum(seg, 1)
