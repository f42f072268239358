"""Which SQL a provider.yml may hold: one scalar expression over its dataset's columns.

Derived columns, checks and measure filters are spliced into DuckDB SQL that runs with the
pipeline's own rights: the connection that evaluates them can read and write files, attach
databases and read settings. A provider file is configuration, but whoever can change it could
otherwise copy a victim table to a file or read a system file into a table. So every expression
is parsed by DuckDB's own parser (``json_serialize_sql``) and accepted only when every node of its
tree is on an allowlist: column references of the dataset, constants, operators, comparisons,
AND/OR/NOT, CASE, CAST, BETWEEN, IN lists and calls of listed scalar functions. Statements,
subqueries, table functions, comments and anything not listed are refused with the reason.

The one subquery accepted is a correlated ``EXISTS`` over the measure's own table in a measure's
``where`` (e.g. "an earlier incident of the same offender"): it reads no table but the one the
measure already aggregates, and its condition is walked by the same rules.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import duckdb

PREFIX = "only one expression over the dataset's columns is allowed"
MAX_CHARS = 4000

# Macros the pipeline defines itself before it evaluates expressions (ingest/loader.py).
HELPER_MACROS = frozenset({"age_years"})

SCALAR_FUNCTIONS = frozenset(
    {
        # text
        "lower", "upper", "lcase", "ucase", "trim", "ltrim", "rtrim", "left", "right",
        "substr", "substring", "length", "len", "strlen", "replace", "concat", "concat_ws",
        "lpad", "rpad", "starts_with", "ends_with", "prefix", "suffix", "contains", "strpos",
        "instr", "position", "split_part", "reverse", "format", "printf", "md5", "sha256",
        "hash", "regexp_matches", "regexp_full_match", "regexp_replace", "regexp_extract",
        "like_escape", "ilike_escape", "list_value", "list_contains",
        # dates and times
        "date_diff", "datediff", "date_sub", "datesub", "date_part", "datepart", "date_trunc",
        "datetrunc", "date_add", "strptime", "try_strptime", "strftime", "make_date",
        "make_timestamp", "last_day", "age", "year", "month", "day", "quarter", "week",
        "dayofweek", "dayofmonth", "dayofyear", "isodow", "hour", "minute", "second", "epoch",
        "to_years", "to_months", "to_weeks", "to_days", "to_hours", "to_minutes", "to_seconds",
        "today", "current_date",
        # numbers
        "abs", "round", "floor", "ceil", "ceiling", "trunc", "sign", "sqrt", "pow", "power",
        "ln", "log", "log10", "log2", "exp", "mod", "greatest", "least", "isnan", "isinf",
        "isfinite",
        # nulls and choices
        "coalesce", "ifnull", "nullif", "if",
    }
)  # fmt: skip

AGGREGATE_FUNCTIONS = frozenset(
    {"sum", "count", "count_star", "min", "max", "avg", "mean", "median", "bool_and", "bool_or"}
)

OPERATORS = frozenset(
    {"+", "-", "*", "/", "//", "%", "^", "**", "||", "~~", "!~~", "~~*", "!~~*", "~~~"}
)

OPERATOR_TYPES = frozenset(
    {
        "OPERATOR_NOT",
        "OPERATOR_IS_NULL",
        "OPERATOR_IS_NOT_NULL",
        "OPERATOR_COALESCE",
        "COMPARE_IN",
        "COMPARE_NOT_IN",
    }
)

TYPES = frozenset(
    {
        "VARCHAR", "TEXT", "STRING", "INTEGER", "INT", "BIGINT", "SMALLINT", "TINYINT",
        "HUGEINT", "DOUBLE", "FLOAT", "REAL", "DECIMAL", "NUMERIC", "DATE", "TIMESTAMP", "TIME",
        "INTERVAL", "BOOLEAN", "BOOL",
    }
)  # fmt: skip

# Names DuckDB reads as a column reference but resolves to the connection's clock.
CLOCK_NAMES = frozenset({"current_date", "current_timestamp"})

STATEMENT_KEYWORDS = frozenset(
    {
        "ALTER", "ANALYZE", "ATTACH", "BEGIN", "CALL", "CHECKPOINT", "COMMIT", "COPY",
        "CREATE", "DEALLOCATE", "DELETE", "DETACH", "DROP", "EXECUTE", "EXPORT", "IMPORT",
        "INSERT", "INSTALL", "LOAD", "PRAGMA", "PREPARE", "RESET", "ROLLBACK", "SET",
        "SUMMARIZE", "TRUNCATE", "UPDATE", "USE", "VACUUM",
    }
)  # fmt: skip

# Functions an attacker reaches for, with what they would do: named in the refusal.
KNOWN_DANGEROUS = {
    "read_text": "reads files",
    "read_blob": "reads files",
    "read_csv": "reads files",
    "read_csv_auto": "reads files",
    "read_json": "reads files",
    "read_json_auto": "reads files",
    "read_parquet": "reads files",
    "parquet_scan": "reads files",
    "glob": "lists files",
    "query": "runs a query",
    "query_table": "reads a table",
    "getenv": "reads the environment",
    "current_setting": "reads settings",
    "duckdb_settings": "reads settings",
    "getvariable": "reads variables set on the connection",
}


@dataclass(frozen=True)
class Scope:
    """What an expression may refer to where the pipeline splices it."""

    columns: frozenset[str]
    withheld: frozenset[str] = frozenset()  # direct identifiers, dropped before aggregation
    aggregates: bool = False  # 'having': sum(...), count(...) over one entity's rows
    table: str | None = None  # the measure's own table: EXISTS over it may be used


class ExpressionRefused(ValueError):
    """A provider.yml expression is not one scalar expression over the dataset's columns."""

    def __init__(self, where: tuple[str, ...], reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{'.'.join(where)}: {self.message}")

    @property
    def message(self) -> str:
        """The refusal without its location (the loader puts the location in front)."""
        return f"{PREFIX}; {self.reason}"


class _Refused(Exception):
    """Raised inside the walk; turned into a reason by :func:`why_refused`."""


_parser_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


def _parse(sql: str) -> dict[str, Any]:
    """DuckDB's parse tree of ``sql`` (parsing only: nothing is bound or run)."""
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(":memory:")
        row = _parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    assert row is not None
    return json.loads(row[0])


def excerpt(text: str, limit: int = 40) -> str:
    """A short one-line quote of configuration text for a message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def why_refused(text: str, scope: Scope) -> str | None:
    """Why ``text`` is not accepted in ``scope`` (a short reason), or None when it is."""
    try:
        _check_text(text)
        tree = _parse("SELECT " + text)
        if tree.get("error"):
            said = (str(tree.get("error_message", "")).splitlines() or [""])[0]
            raise _Refused(f"DuckDB cannot read it as one expression ({excerpt(said, 80)})")
        statements = tree["statements"]
        if len(statements) != 1:
            raise _Refused("found more than one statement")
        expression = _single_expression(statements[0]["node"])
        _walk(expression, scope, frozenset())
    except _Refused as refused:
        return str(refused)
    return None


def _check_text(text: str) -> None:
    """Token-level refusals: what the tree would hide or what must not reach it at all."""
    if not text.strip():
        raise _Refused("it is empty")
    if len(text) > MAX_CHARS:
        raise _Refused(f"it is longer than {MAX_CHARS} characters")
    try:
        tokens = duckdb.tokenize(text)
    except (duckdb.Error, RuntimeError) as exc:
        raise _Refused(f"DuckDB cannot read it ({excerpt(str(exc), 80)})") from None
    ends = [pos for pos, _ in tokens[1:]] + [len(text)]
    for (start, kind), end in zip(tokens, ends, strict=True):
        token = text[start:end].strip()
        if kind == duckdb.token_type.comment:
            raise _Refused("found a comment ('--' or '/*'): write comments in YAML, after '#'")
        if kind == duckdb.token_type.operator and ";" in token:
            raise _Refused("found ';', which ends the expression and starts another statement")
        if kind == duckdb.token_type.keyword and token.upper() in STATEMENT_KEYWORDS:
            raise _Refused(f"found the statement keyword {token.upper()}")
        if kind == duckdb.token_type.string_const:
            if not token.startswith("'"):
                raise _Refused(
                    f"found the string {excerpt(token, 20)}: only plain '...' literals are "
                    "allowed (no E'', $$ or x'' strings)"
                )
            if "'" in token[1:-1]:
                raise _Refused(
                    f"found the string literal {excerpt(token, 20)} with a quote inside it: "
                    "spell the value without quotes"
                )


def _single_expression(node: dict[str, Any]) -> dict[str, Any]:
    """The one expression of ``SELECT <text>``, or a refusal naming the clause that was added."""
    if node.get("type") != "SELECT_NODE":
        raise _Refused("found a set operation (UNION, EXCEPT, INTERSECT)")
    if node["modifiers"]:
        raise _Refused("found DISTINCT, ORDER BY or LIMIT")
    if node["cte_map"]["map"]:
        raise _Refused("found a WITH clause")
    if node["from_table"]["type"] != "EMPTY":
        raise _Refused("found a FROM clause")
    for clause, said in (
        ("where_clause", "WHERE"),
        ("having", "HAVING"),
        ("qualify", "QUALIFY"),
        ("sample", "USING SAMPLE"),
    ):
        if node.get(clause) is not None:
            raise _Refused(f"found a {said} clause")
    if node["group_expressions"] or node["group_sets"]:
        raise _Refused("found a GROUP BY clause")
    if len(node["select_list"]) != 1:
        raise _Refused("found several expressions separated by commas")
    expression = node["select_list"][0]
    if expression.get("alias"):
        raise _Refused(f"found an alias ({excerpt(expression['alias'], 30)})")
    return expression


def _walk(node: dict[str, Any], scope: Scope, qualifiers: frozenset[str]) -> None:
    """Refuse any node of the tree that is not on the allowlist; recurse into the rest."""
    kind = node.get("class")
    if kind == "COLUMN_REF":
        _column(node["column_names"], scope, qualifiers)
    elif kind == "CONSTANT":
        literal = node.get("literal", {})
        if literal.get("kind") == "STRING" and "'" in str(literal.get("text", "")):
            raise _Refused("found a string literal with a quote inside it")
    elif kind == "OPERATOR":
        if node["type"] not in OPERATOR_TYPES:
            raise _Refused(f"found the operator {node['type'].lower()}")
        for child in node["children"]:
            _walk(child, scope, qualifiers)
    elif kind == "COMPARISON":
        _walk(node["left"], scope, qualifiers)
        _walk(node["right"], scope, qualifiers)
    elif kind == "CONJUNCTION":
        for child in node["children"]:
            _walk(child, scope, qualifiers)
    elif kind == "CASE":
        for check in node["case_checks"]:
            _walk(check["when_expr"], scope, qualifiers)
            _walk(check["then_expr"], scope, qualifiers)
        _walk(node["else_expr"], scope, qualifiers)
    elif kind == "CAST":
        _type(node["type_expr"])
        _walk(node["child"], scope, qualifiers)
    elif kind == "BETWEEN":
        for part in ("input", "lower", "upper"):
            _walk(node[part], scope, qualifiers)
    elif kind == "FUNCTION":
        _function(node, scope, qualifiers)
    elif kind == "SUBQUERY":
        _subquery(node, scope)
    elif kind == "WINDOW":
        raise _Refused("found a window function (OVER)")
    elif kind == "STAR":
        raise _Refused("found * or COLUMNS(...)")
    elif kind == "PARAMETER":
        raise _Refused("found a prepared-statement parameter")
    else:
        raise _Refused(f"found a {str(kind).lower()} expression")


def _column(names: list[str], scope: Scope, qualifiers: frozenset[str]) -> None:
    if len(names) == 2 and names[0].lower() in qualifiers:
        names = names[1:]
    if len(names) != 1:
        raise _Refused(
            f"found {excerpt('.'.join(names), 40)}: name the dataset's columns without a "
            "table or schema"
        )
    name = names[0].lower()
    if name in scope.columns or name in CLOCK_NAMES:
        return
    if name in scope.withheld:
        raise _Refused(
            f"found column {names[0]!r}, a direct identifier: it is dropped at ingest and "
            "cannot be used here"
        )
    raise _Refused(f"found {excerpt(names[0], 40)!r}, which is not a column of the dataset")


def _type(node: dict[str, Any]) -> None:
    name = str(node.get("type_name", ""))
    if node.get("catalog") or node.get("schema") or name.upper() not in TYPES:
        raise _Refused(f"found a cast to {excerpt(name, 30)}, which is not a plain type")
    for child in node.get("children", []):
        if child.get("class") != "CONSTANT":
            raise _Refused("found a type with an expression in it")


def _function(node: dict[str, Any], scope: Scope, qualifiers: frozenset[str]) -> None:
    name = str(node["function_name"]).lower()
    if node.get("schema") or node.get("catalog"):
        raise _Refused(f"found a function named with a schema or catalog ({excerpt(name, 30)})")
    if node.get("is_operator"):
        if name not in OPERATORS:
            raise _Refused(f"found the operator {excerpt(name, 10)}")
    elif name in AGGREGATE_FUNCTIONS:
        if not scope.aggregates:
            raise _Refused(f"found the aggregate {name}(), which only 'having' may use")
    elif name in KNOWN_DANGEROUS:
        raise _Refused(f"found {name}(), which {KNOWN_DANGEROUS[name]}")
    elif name not in SCALAR_FUNCTIONS and name not in HELPER_MACROS:
        raise _Refused(f"found {excerpt(name, 30)}(), which is not an allowed scalar function")
    aggregate = name in AGGREGATE_FUNCTIONS
    if node.get("export_state") or node.get("order_bys", {}).get("orders"):
        raise _Refused(f"found ORDER BY or EXPORT_STATE in {name}()")
    if node.get("distinct") and not aggregate:
        raise _Refused(f"found DISTINCT in {name}()")
    if node.get("filter") is not None:
        if not aggregate:
            raise _Refused(f"found FILTER in {name}()")
        _walk(node["filter"], scope, qualifiers)
    for argument in node["arguments"]:
        if argument.get("name"):
            raise _Refused(f"found a named argument in {name}()")
        _walk(argument["expression"], scope, qualifiers)


def _subquery(node: dict[str, Any], scope: Scope) -> None:
    """Refuse a subquery, unless it is ``EXISTS`` over the measure's own table."""
    if scope.table is None or node.get("subquery_type") != "EXISTS":
        reads = _table_functions(node)
        raise _Refused(f"found a subquery reading {reads[0]}()" if reads else "found a subquery")
    inner = node["subquery"]["node"]
    source = inner.get("from_table", {})
    path = [p.lower() for p in source.get("qualified_name", {}).get("path", [])]
    alias = str(source.get("alias", "")).lower()
    own = scope.table.lower()
    if (
        inner.get("type") != "SELECT_NODE"
        or source.get("type") != "BASE_TABLE"
        or path != ["raw", own]
        or not alias
        or source.get("at_clause") is not None
        or source.get("column_name_alias")
        or source.get("sample") is not None
    ):
        raise _Refused(f"found a subquery that reads something other than raw.{scope.table}")
    if (
        inner["modifiers"]
        or inner["cte_map"]["map"]
        or inner["group_expressions"]
        or inner["group_sets"]
        or inner.get("having") is not None
        or inner.get("qualify") is not None
        or inner.get("sample") is not None
        or inner.get("where_clause") is None
        or any(item.get("class") != "CONSTANT" for item in inner["select_list"])
    ):
        raise _Refused("found a subquery other than EXISTS (SELECT 1 FROM ... WHERE ...)")
    lookup = Scope(scope.columns, scope.withheld, aggregates=False, table=None)
    _walk(inner["where_clause"], lookup, frozenset({alias, own}))


def _table_functions(tree: Any) -> list[str]:
    """Names of the table functions (read_text, glob...) anywhere in ``tree``, for the reason."""
    found: list[str] = []
    if isinstance(tree, dict):
        if tree.get("type") == "TABLE_FUNCTION":
            found.append(str(tree.get("function", {}).get("function_name", "?")).lower())
        for value in tree.values():
            found += _table_functions(value)
    elif isinstance(tree, list):
        for value in tree:
            found += _table_functions(value)
    return found
