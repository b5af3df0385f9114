// TEMPORARY placeholder so the layer links while the tokenizer is written.
namespace strata {}
