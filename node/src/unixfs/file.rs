//! File import: chunks -> leaves -> balanced or trickle DAG, with kubo's exact node bytes.
