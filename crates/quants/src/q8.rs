//! Activation quantizers: Q8_0, Q8_1, Q8_K (ggml's `quantize_row_q8_*`).
