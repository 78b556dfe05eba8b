"""The decision layer, pure: features from verified interaction documents, a glass-box churn model whose
explanation is exact, counterfactuals on the model's own bins, segments and recommendations.

Nothing here imports `ledger` or `offchain`: callers hand in documents that verified against the chain
and log what comes out."""
