"""Cross-process atomics on numpy array elements, for use inside ``@njit`` kernels.

Numba has no CPU atomics, so each operation here is a ``numba.extending.intrinsic``
that emits the one LLVM instruction it names (``cmpxchg``, ``atomicrmw``,
``load atomic``, ``store atomic``, ``fence``) on a pointer to ``a[i]``.  On x86-64
they compile to ``lock cmpxchg``, ``lock xadd``, ``xchg``, ``lock or``/``lock and``
(or a ``cmpxchg`` loop when the old value is used), plain ``mov`` for
acquire/release, and ``mfence``/``lock or`` for the full fence.  Because they act
on memory, they are exact across processes that map the same shared segment.

Every load that waits on another worker must go through :func:`load_acquire` (or
:func:`load_relaxed`): LLVM hoists plain loads out of spin loops.

All operations take an integer numpy array and an index; the value operands are
cast to the array's element type.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "cas", "cas_bool", "fetch_add", "fetch_sub", "xchg", "fetch_or", "fetch_and",
    "load_acquire", "load_relaxed", "store_release", "store_relaxed",
    "fence", "cpu_relax", "rdtsc", "clz64",
]


def _check_array(ary):
    return (isinstance(ary, types.Array) and isinstance(ary.dtype, types.Integer))


def _elem_ptr(context, builder, aryty, ary, idx, idxty):
    arr = context.make_array(aryty)(context, builder, ary)
    idx = context.cast(builder, idx, idxty, types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, arr, [idx], wraparound=False)


def _value(context, builder, val, valty, dtype):
    return context.cast(builder, val, valty, dtype)


def _align(dtype):
    return dtype.bitwidth // 8


def _make_rmw(op: str, ordering: str = "seq_cst"):
    @intrinsic
    def rmw(typingctx, ary, idx, val):
        if not (_check_array(ary) and isinstance(idx, types.Integer)
                and isinstance(val, (types.Integer, types.Boolean))):
            return None
        dtype = ary.dtype
        sig = dtype(ary, idx, val)

        def codegen(context, builder, signature, args):
            aryty, idxty, valty = signature.args
            ptr = _elem_ptr(context, builder, aryty, args[0], args[1], idxty)
            v = _value(context, builder, args[2], valty, dtype)
            return builder.atomic_rmw(op, ptr, v, ordering)

        return sig, codegen

    return rmw


fetch_add = _make_rmw("add")
fetch_add.__doc__ = "a[i] += v atomically (``lock xadd``); returns the old value."
fetch_sub = _make_rmw("sub")
xchg = _make_rmw("xchg")
fetch_or = _make_rmw("or")
fetch_and = _make_rmw("and")


@intrinsic
def cas(typingctx, ary, idx, expected, new):
    """Compare-and-swap a[i] from ``expected`` to ``new`` (``lock cmpxchg``).

    Returns the value found; the swap happened iff it equals ``expected``.
    """
    if not (_check_array(ary) and isinstance(idx, types.Integer)
            and isinstance(expected, types.Integer) and isinstance(new, types.Integer)):
        return None
    dtype = ary.dtype
    sig = dtype(ary, idx, expected, new)

    def codegen(context, builder, signature, args):
        aryty, idxty, ety, nty = signature.args
        ptr = _elem_ptr(context, builder, aryty, args[0], args[1], idxty)
        e = _value(context, builder, args[2], ety, dtype)
        n = _value(context, builder, args[3], nty, dtype)
        res = builder.cmpxchg(ptr, e, n, "seq_cst", "seq_cst")
        return builder.extract_value(res, 0)

    return sig, codegen


@intrinsic
def cas_bool(typingctx, ary, idx, expected, new):
    """Compare-and-swap returning True when the swap happened."""
    if not (_check_array(ary) and isinstance(idx, types.Integer)
            and isinstance(expected, types.Integer) and isinstance(new, types.Integer)):
        return None
    dtype = ary.dtype
    sig = types.boolean(ary, idx, expected, new)

    def codegen(context, builder, signature, args):
        aryty, idxty, ety, nty = signature.args
        ptr = _elem_ptr(context, builder, aryty, args[0], args[1], idxty)
        e = _value(context, builder, args[2], ety, dtype)
        n = _value(context, builder, args[3], nty, dtype)
        res = builder.cmpxchg(ptr, e, n, "seq_cst", "seq_cst")
        return builder.extract_value(res, 1)

    return sig, codegen


def _make_load(ordering: str):
    @intrinsic
    def load(typingctx, ary, idx):
        if not (_check_array(ary) and isinstance(idx, types.Integer)):
            return None
        dtype = ary.dtype
        sig = dtype(ary, idx)

        def codegen(context, builder, signature, args):
            aryty, idxty = signature.args
            ptr = _elem_ptr(context, builder, aryty, args[0], args[1], idxty)
            return builder.load_atomic(ptr, ordering, _align(dtype))

        return sig, codegen

    return load


load_acquire = _make_load("acquire")
load_acquire.__doc__ = "Load a[i] with acquire ordering (a plain ``mov`` on x86, never hoisted)."
load_relaxed = _make_load("monotonic")


def _make_store(ordering: str):
    @intrinsic
    def store(typingctx, ary, idx, val):
        if not (_check_array(ary) and isinstance(idx, types.Integer)
                and isinstance(val, (types.Integer, types.Boolean))):
            return None
        dtype = ary.dtype
        sig = types.void(ary, idx, val)

        def codegen(context, builder, signature, args):
            aryty, idxty, valty = signature.args
            ptr = _elem_ptr(context, builder, aryty, args[0], args[1], idxty)
            v = _value(context, builder, args[2], valty, dtype)
            builder.store_atomic(v, ptr, ordering, _align(dtype))
            return context.get_dummy_value()

        return sig, codegen

    return store


store_release = _make_store("release")
store_release.__doc__ = "Store v to a[i] with release ordering (a plain ``mov`` on x86)."
store_relaxed = _make_store("monotonic")


@intrinsic
def fence(typingctx):
    """Full sequentially consistent fence (``mfence`` or ``lock or`` on x86)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def cpu_relax(typingctx):
    """Spin-loop hint: ``pause`` on x86 (``llvm.x86.sse2.pause``), nothing elsewhere."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        import platform
        if platform.machine() in ("x86_64", "AMD64", "i686"):
            fnty = ir.FunctionType(ir.VoidType(), [])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse2.pause")
            builder.call(fn, [])
        else:
            # No portable pause intrinsic: a compiler barrier keeps the loop honest.
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def rdtsc(typingctx):
    """The CPU's cycle counter (``rdtsc`` on x86, via ``llvm.readcyclecounter``)."""
    sig = types.int64()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return sig, codegen


@intrinsic
def clz64(typingctx, x):
    """Leading zero bits of a 64-bit integer (``lzcnt``/``bsr`` via ``llvm.ctlz``); 64 for 0."""
    if not isinstance(x, types.Integer):
        return None
    sig = types.int64(x)

    def codegen(context, builder, signature, args):
        v = context.cast(builder, args[0], signature.args[0], types.int64)
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [i64, ir.IntType(1)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.ctlz.i64")
        return builder.call(fn, [v, ir.Constant(ir.IntType(1), 0)])

    return sig, codegen
