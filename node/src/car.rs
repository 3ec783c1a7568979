//! CAR v1 export and CAR v1/v2 import, with bounded header and section sizes.
