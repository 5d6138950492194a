//! Shapes the OpenAPI document names that no handler builds as a typed body.

use utoipa::ToSchema;

/// The raw bytes of a file (an MP4, an image): documented as a binary string, not as an array
/// of numbers.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(pub Vec<u8>);
