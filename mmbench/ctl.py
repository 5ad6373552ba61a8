"""Layout of the harness's control words and of the per-worker counter rows.

Both the harness and the models import this module; it knows no mechanism.

``ctl`` is an int64 array in the arena (one word per cache line so that the stop
flag, which every worker polls, never shares a line with a word that is written
often).  ``counters`` is an int64 array of shape (workers, n) where n is a
multiple of 16, so each worker's row is 128 bytes (two cache lines, which also
defeats the adjacent-line prefetcher).
"""
LINE_WORDS = 8           # int64 words per 64-byte cache line
ROW_WORDS = 16           # counter row granule: 128 bytes

# ctl[i * LINE_WORDS]
CTL_STOP = 0 * LINE_WORDS        # set by the parent: finish the current batch and stop
CTL_ABORT = 1 * LINE_WORDS       # set by the parent: give up spinning, the run is void
CTL_BARRIER = 2 * LINE_WORDS     # start barrier: workers arrived
CTL_GO = 3 * LINE_WORDS          # start barrier: released by the parent
CTL_KBAR_COUNT = 4 * LINE_WORDS  # in-kernel barrier (phased workloads): arrivals
CTL_KBAR_GEN = 5 * LINE_WORDS    # in-kernel barrier: generation
CTL_CLOCK_MS = 6 * LINE_WORDS    # harness clock: ms since the start barrier, updated by the
                                 # parent at least every 50 ms (the models' timers read it)
CTL_WORDS = 7 * LINE_WORDS

# Lock statistics every model's counter row starts with (see locks.py).
C_LOCK_ACQ = 0          # acquisitions
C_LOCK_CONTENDED = 1    # acquisitions that found the lock held
C_LOCK_SPINS = 2        # spin-loop iterations while waiting
C_LOCK_HOLD_CYC = 3     # cycles held, summed over sampled acquisitions
C_LOCK_HOLD_N = 4       # number of sampled acquisitions
C_LOCK_T0 = 5           # scratch: cycle counter at the sampled acquisition
C_LOCK_ABORTED = 6      # waits given up because the run was aborted
C_LOCK_HANDOVER = 7     # acquisitions whose previous holder was another worker
N_LOCK_COUNTERS = 8
#: reported lock counters and their columns (C_LOCK_T0 is scratch, not data)
LOCK_COUNTERS = {"lock_acquisitions": C_LOCK_ACQ, "lock_contended": C_LOCK_CONTENDED,
                 "lock_spins": C_LOCK_SPINS, "lock_hold_cycles_sampled": C_LOCK_HOLD_CYC,
                 "lock_hold_samples": C_LOCK_HOLD_N, "lock_aborted_waits": C_LOCK_ABORTED,
                 "lock_handovers": C_LOCK_HANDOVER}

HOLD_SAMPLE_MASK = 63   # sample the hold time of one acquisition in 64


def counter_columns(n_model: int) -> int:
    """Row length (a multiple of ROW_WORDS) for the lock counters plus n_model more."""
    n = N_LOCK_COUNTERS + n_model
    return (n + ROW_WORDS - 1) // ROW_WORDS * ROW_WORDS
