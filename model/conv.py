"""Convolution and pooling over images: Conv2D and MaxPool2D (NCHW, float32).

Both follow ``layers.py``'s pattern (``forward``/``backward``, per-thread
buffers, ``kind``/``config`` to rebuild them).

How a convolution becomes one matrix product (im2col). For every input
channel ``c`` and kernel offset ``(i, j)``, the pixels that offset reads for
all output positions form one row of a matrix ``cols`` of shape
``(C * k * k, N * Ho * Wp)``; the kernel reshaped to ``(F, C * k * k)`` times
``cols`` is the whole layer's output. The rows are gathered from the padded
input through a strided view, without a Python loop.

The trick that makes the gather cheap (for stride 1): output rows are
computed at the padded width ``Wp`` rather than the output width ``Wo``.
Then the pixels one offset reads, over a whole image, are one contiguous run
of ``Ho * Wp`` values of the padded image, so the gather copies long runs
instead of ``Wo``-pixel snippets. The ``Wp - Wo`` extra columns of each output
row are discarded (forward) or given a zero gradient (backward). The padded
image is stored with one spare row, so the runs of the last image stay inside
the buffer. col2im, the backward scatter, adds each offset's run back in the
same layout: ``k * k`` strided additions.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .layers import Layer, Setting, Shape, register

__all__ = ["Conv2D", "MaxPool2D", "col2im", "col2im_views", "conv_output_size", "im2col", "im2col_view"]


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Return the output length of a convolution or pooling along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def im2col_view(Xp: np.ndarray, k: int, Ho: int) -> np.ndarray:
    """Return the read-only strided view whose copy is the im2col matrix of a padded
    stride-1 batch, in the padded-width layout.

    Parameters
    ----------
    Xp : (N, C, Hp, Wp) padded input, a C-contiguous view of a buffer holding at
        least ``Wp`` more elements after its end (``Conv2D`` makes such views).
    k : kernel size; ``Ho`` output rows.

    Returns
    -------
    (C, k, k, N, Ho * Wp) view: ``[c, i, j, n, y * Wp + x] = Xp[n, c, y + i, x + j]``
    (for x >= Wo the values are finite but meaningless).
    """
    N, C, Hp, Wp = Xp.shape
    sn, sc, sy, sx = Xp.strides
    return as_strided(Xp, shape=(C, k, k, N, Ho * Wp), strides=(sc, sy, sx, sn, sx), writeable=False)


def im2col(Xp: np.ndarray, k: int, Ho: int, out: np.ndarray) -> np.ndarray:
    """Write the im2col matrix of ``Xp`` into ``out`` (C, k, k, N, Ho * Wp); return ``out``."""
    np.copyto(out, im2col_view(Xp, k, Ho))
    return out


def col2im_views(dcols: np.ndarray, dXp: np.ndarray, k: int, Ho: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return the k * k (target, source) pairs whose ``target += source`` scatters ``dcols``
    (C, k, k, N, Ho * Wp) back into ``dXp`` (N, C, Hp, Wp): the adjoint of im2col.

    ``dXp`` needs the same spare space as im2col's input; the runs of one image
    overlap the next one's only where ``dcols`` is zero (padded-width columns).
    """
    N, C, Hp, Wp = dXp.shape
    sn, sc, sy, sx = dXp.strides
    run = Ho * Wp
    return [(as_strided(dXp[:, :, i:, j:], shape=(C, N, run), strides=(sc, sn, sx)), dcols[:, i, j])
            for i in range(k) for j in range(k)]


def col2im(dcols: np.ndarray, dXp: np.ndarray, k: int, Ho: int) -> np.ndarray:
    """Scatter-add ``dcols`` into ``dXp`` (which must start at zero); return ``dXp``."""
    for target, source in col2im_views(dcols, dXp, k, Ho):
        target += source
    return dXp


class _Plan:
    """One thread's buffers and views for one input shape, built on its first call.

    Forward: ``interior`` (where the input is copied, inside its zero padding),
    ``windows`` (the strided view whose copy is ``cols``), the product ``Yt``
    (F, N, Ho, W*) and ``Y_from_Yt``, its output pixels in NCHW order.
    Backward (built on the first backward call): the zero-padded gradient
    ``dYt``, ``dcols``, and the scatter pairs into ``dXp``.
    """

    def __init__(self, layer: Conv2D, shape: tuple[int, ...], dtype: np.dtype):
        N, C, H, W = shape
        F, k, s, p = layer.filters, layer.kernel, layer.stride, layer.padding
        _, Ho, Wo = layer.output_shape((C, H, W))
        Hp, Wp = H + 2 * p, W + 2 * p
        self.shape, self.dtype = shape, dtype
        self.out_shape = (N, F, Ho, Wo)
        size = N * C * Hp * Wp
        self.storage = np.zeros(size + Wp, dtype)  # a spare row: the last runs read past the end
        Xp = self.storage[:size].reshape(N, C, Hp, Wp)
        self.interior = Xp[:, :, p:p + H, p:p + W]
        if s == 1:
            # Output rows at the padded width: every (channel, offset) row of cols is one run.
            self.windows = im2col_view(Xp, k, Ho)
            Wq = Wp
        else:
            win = np.lib.stride_tricks.sliding_window_view(Xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
            self.windows = win[:, :, :Ho, :Wo].transpose(1, 4, 5, 0, 2, 3)
            Wq = Wo
        self.cols = np.empty(self.windows.shape, dtype)
        self.cols2d = self.cols.reshape(C * k * k, N * Ho * Wq)
        self.Yt = np.empty((F, N, Ho, Wq), dtype)
        self.Yt2d = self.Yt.reshape(F, -1)
        self.Y_from_Yt = self.Yt[..., :Wo].transpose(1, 0, 2, 3)
        self.Y = np.empty(self.out_shape, dtype)
        self._geometry = (N, C, H, W, F, k, s, p, Ho, Wo, Hp, Wp, Wq)
        self.backward_ready = False

    def prepare_backward(self) -> None:
        N, C, H, W, F, k, s, p, Ho, Wo, Hp, Wp, Wq = self._geometry
        dtype = self.dtype
        self.dYt = np.zeros((F, N, Ho, Wq), dtype)  # padded-width columns stay zero
        self.dYt2d = self.dYt.reshape(F, -1)
        self.dY_into = self.dYt[..., :Wo].transpose(1, 0, 2, 3)
        self.dcols = np.empty(self.cols.shape, dtype)
        self.dcols2d = self.dcols.reshape(self.cols2d.shape)
        size = N * C * Hp * Wp
        self.dstorage = np.zeros(size + Wp, dtype)
        dXp = self.dstorage[:size].reshape(N, C, Hp, Wp)
        if s == 1:
            self.scatter = col2im_views(self.dcols, dXp, k, Ho)  # dcols: (C, k, k, N, Ho * Wp)
        else:
            d6 = self.dcols  # (C, k, k, N, Ho, Wo)
            self.scatter = [(dXp[:, :, i:i + s * Ho:s, j:j + s * Wo:s], d6[:, i, j].transpose(1, 0, 2, 3))
                            for i in range(k) for j in range(k)]
        self.dX = dXp[:, :, p:p + H, p:p + W]
        self.backward_ready = True


@register
class Conv2D(Layer):
    """2-D convolution (cross-correlation, as every framework) with ``filters`` kernels
    of ``kernel x kernel`` pixels, zero ``padding`` and ``stride``.

    ``W`` has shape (filters, channels, kernel, kernel), ``b`` (filters,). He
    initialisation over the fan-in ``channels * kernel**2``. Without ``bias``
    (when a batch normalisation follows, which would cancel it) ``params`` is
    just ``[W]``. Each call is a copy into the padded input, the im2col copy,
    one matrix product and a copy into NCHW order, through views built once
    per input shape (``_Plan``).
    """

    kind = "conv2d"
    settings = {"filters": Setting(int, ge=1, le=4096), "kernel": Setting(int, ge=1, le=15),
                "stride": Setting(int, 1, ge=1, le=8), "padding": Setting(int, 0, ge=0, le=14),
                "bias": Setting(bool, True)}

    def __init__(self, channels: int, filters: int, kernel: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, rng: np.random.Generator | None = None,
                 dtype: np.dtype = np.float32) -> None:
        super().__init__()
        if min(channels, filters, kernel, stride) < 1 or padding < 0 or padding >= kernel:
            raise ValueError(f"bad convolution: channels {channels}, filters {filters}, kernel {kernel}, "
                             f"stride {stride}, padding {padding}")
        self.channels, self.filters, self.kernel = int(channels), int(filters), int(kernel)
        self.stride, self.padding, self.bias = int(stride), int(padding), bool(bias)
        shape = (filters, channels, kernel, kernel)
        if rng is None:
            W = np.zeros(shape, dtype=dtype)
        else:
            fan_in = channels * kernel * kernel
            W = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
        self.params = [W] + ([np.zeros(filters, dtype=dtype)] if bias else [])
        self.grads = [np.zeros_like(p) for p in self.params]
        # (filters, channels * k * k) views of the kernel and its gradient (params change in place).
        self._Wmat = W.reshape(filters, -1)
        self._dWmat = self.grads[0].reshape(filters, -1)
        self._b4 = self.params[1].reshape(1, filters, 1, 1) if bias else None
        self.needs_input_grad = True

    @property
    def param_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("W", "b") if self.bias else ("W",)

    @property
    def decays(self) -> tuple[bool, ...]:  # type: ignore[override]
        return (True, False) if self.bias else (True,)

    @classmethod
    def build(cls, input_shape, rng=None, dtype=np.float32, *, filters: int, kernel: int,
              stride: int = 1, padding: int = 0, bias: bool = True) -> Conv2D:
        if len(input_shape) != 3:
            raise ValueError(f"conv2d takes (channels, height, width) inputs, got {input_shape}")
        layer = cls(input_shape[0], filters, kernel, stride, padding, bias, rng, dtype)
        layer.output_shape(input_shape)  # checks the kernel fits
        return layer

    def config(self) -> dict:
        return {"filters": self.filters, "kernel": self.kernel, "stride": self.stride,
                "padding": self.padding, "bias": self.bias}

    def describe(self) -> str:
        return f"conv{self.kernel}x{self.kernel}x{self.filters}" + (f"/{self.stride}" if self.stride > 1 else "")

    def macs(self, input_shape: Shape) -> int:
        _, Ho, Wo = self.output_shape(input_shape)
        return Ho * Wo * self.params[0].size

    def output_shape(self, input_shape: Shape) -> Shape:
        C, H, W = input_shape
        Ho = conv_output_size(H, self.kernel, self.stride, self.padding)
        Wo = conv_output_size(W, self.kernel, self.stride, self.padding)
        if C != self.channels or Ho < 1 or Wo < 1:
            raise ValueError(f"conv2d {self.config()} on {self.channels} channels cannot take {input_shape}")
        return (self.filters, Ho, Wo)

    def _plan(self, X: np.ndarray) -> _Plan:
        store = self._local.__dict__
        plan = store.get("plan")
        dtype = np.result_type(X, self.params[0])
        if plan is None or plan.shape != X.shape or plan.dtype != dtype:
            plan = store["plan"] = _Plan(self, X.shape, dtype)
        return plan

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        plan = self._plan(X)
        np.copyto(plan.interior, X)
        np.copyto(plan.cols, plan.windows)
        np.matmul(self._Wmat, plan.cols2d, out=plan.Yt2d)
        Y = plan.Y
        if self._b4 is not None:  # the bias added in the same pass that puts the pixels in NCHW order
            np.add(plan.Y_from_Yt, self._b4, out=Y)
        else:
            np.copyto(Y, plan.Y_from_Yt)
        if training:
            self._keep(plan_for_backward=plan)
        return Y

    def backward(self, dY: np.ndarray) -> np.ndarray:
        plan = self._kept("plan_for_backward")
        if not plan.backward_ready:
            plan.prepare_backward()
        np.copyto(plan.dY_into, dY)
        np.matmul(plan.dYt2d, plan.cols2d.T, out=self._dWmat)
        if self.bias:
            np.add.reduce(dY, axis=(0, 2, 3), out=self.grads[1])
        if not self.needs_input_grad:
            return dY
        np.matmul(self._Wmat.T, plan.dYt2d, out=plan.dcols2d)
        plan.dstorage.fill(0.0)
        for target, source in plan.scatter:
            target += source
        return plan.dX


@register
class MaxPool2D(Layer):
    """2x2 max pooling with stride 2 (an odd last row or column is dropped).

    Pooling runs in two passes, the larger of each window's two rows and then
    the larger of the two columns of that, so it reads contiguous rows rather
    than four strided views. The gradient goes to one maximum of each window
    (on a tie: the upper row, then the left column), never to two.
    """

    kind = "maxpool2d"
    size = 2
    settings = {"size": Setting(int, 2, choices=(2,))}

    @classmethod
    def build(cls, input_shape, rng=None, dtype=np.float32, *, size: int = 2) -> MaxPool2D:
        if len(input_shape) != 3:
            raise ValueError(f"maxpool2d takes (channels, height, width) inputs, got {input_shape}")
        if size != 2:
            raise ValueError(f"maxpool2d supports size 2, got {size}")
        layer = cls()
        layer.output_shape(input_shape)
        return layer

    def config(self) -> dict:
        return {"size": self.size}

    def describe(self) -> str:
        return f"pool{self.size}"

    def output_shape(self, input_shape: Shape) -> Shape:
        C, H, W = input_shape
        if H < 2 or W < 2:
            raise ValueError(f"maxpool2d cannot take {input_shape}")
        return (C, H // 2, W // 2)

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        N, C, H, W = X.shape
        Ho, Wo = H // 2, W // 2
        rows = X[:, :, :2 * Ho, :2 * Wo].reshape(N, C, Ho, 2, 2 * Wo)  # a view
        T = self._buffer("T", (N, C, Ho, Wo, 2), X.dtype)  # the larger row of each window
        T2 = T.reshape(N, C, Ho, 2 * Wo)
        Y = self._buffer("Y", (N, C, Ho, Wo), X.dtype)
        if training:
            lower = self._buffer("lower", T2.shape, np.bool_)
            right = self._buffer("right", Y.shape, np.bool_)
            np.greater(rows[:, :, :, 1], rows[:, :, :, 0], out=lower)
            np.maximum(rows[:, :, :, 0], rows[:, :, :, 1], out=T2)
            np.greater(T[..., 1], T[..., 0], out=right)
            self._keep(x_shape=X.shape, lower=lower, right=right)
        else:
            np.maximum(rows[:, :, :, 0], rows[:, :, :, 1], out=T2)
        return np.maximum(T[..., 0], T[..., 1], out=Y)

    def backward(self, dY: np.ndarray) -> np.ndarray:
        N, C, H, W = self._kept("x_shape")
        lower, right = self._kept("lower"), self._kept("right")
        Ho, Wo = H // 2, W // 2
        dT = self._buffer("dT", (N, C, Ho, Wo, 2), dY.dtype)
        np.multiply(dY, right, out=dT[..., 1])
        np.subtract(dY, dT[..., 1], out=dT[..., 0])
        dT2 = dT.reshape(N, C, Ho, 2 * Wo)
        dX = self._buffer("dX", (N, C, H, W), dY.dtype)
        if H % 2 or W % 2:
            dX.fill(0.0)  # the dropped edge
        rows = dX[:, :, :2 * Ho, :2 * Wo].reshape(N, C, Ho, 2, 2 * Wo)  # a view, as in forward
        np.multiply(dT2, lower, out=rows[:, :, :, 1])
        np.subtract(dT2, rows[:, :, :, 1], out=rows[:, :, :, 0])
        return dX
