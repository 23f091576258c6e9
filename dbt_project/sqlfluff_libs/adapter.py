"""sqlfluff's stand-in for dbt's ``adapter`` in the Jinja context (``library_path`` in .sqlfluff): the models are
linted as DuckDB SQL, so ``adapter.dispatch('name')`` resolves to the project's ``default__name`` macro, as dbt
does on the DuckDB target. Only for linting; dbt never reads this folder."""

from jinja2 import pass_context


@pass_context
def dispatch(context, name, macro_namespace=None):  # noqa: ARG001 — dbt's signature
    macro = context.resolve_or_missing(f"default__{name}")
    if macro is context.environment.undefined or macro is None:
        raise LookupError(f"no default__{name} macro for sqlfluff to render adapter.dispatch('{name}')")
    return macro
