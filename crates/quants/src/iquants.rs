use crate::{GgmlType, TypeKernels};

pub(crate) fn kernels(_ty: GgmlType) -> Option<&'static TypeKernels> {
    None
}
