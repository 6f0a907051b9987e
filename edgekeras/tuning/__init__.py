"""Hyperparameter tuning: a recipe with search spaces, searched by Keras Tuner.

    import edgekeras as ek
    result = ek.tune("recipe.yaml")          # = edgekeras tune recipe.yaml
    print(result.best.values, result.best.score, result.best_run)

Modules: `settings` (the recipe's `tune:` section), `tuner` (the Keras Tuner adapter: oracle,
hyperparameters), `trials` (one trial: the recipe trained with its values, then scored),
`folder` (the tuning folder's layout and state), `results` (table, plots, report),
`search` (`tune`), `launcher` (a chief and workers on this machine). The search-space grammar
is the recipe's (`edgekeras.recipe.spaces`). This package's `__init__` imports nothing, so the
recipe can read `settings` without loading the rest.
"""
