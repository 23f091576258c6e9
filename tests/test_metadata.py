"""What a step records for the next is a table in the UI and reads back to the same mapping — also from the
JSON an earlier version of the project recorded."""

import dagster as dg

from orchestration import metadata as md

GRADES = {
    "uscc": {"level": "L1", "role": "direct", "transform": "pseudonymised", "inherited": "L4"},
    "revenue": {"level": "L2", "role": "sensitive", "transform": None, "inherited": "L2"},
}
HOW = {"uscc": {"type": "DIRECT", "subtype": "TRANSFORMATION", "description": "HMAC", "masking": True}}


def test_each_record_is_a_table_and_reads_back_whole():
    cases = [
        (md.grades_table(GRADES), md.grades_of, GRADES),
        (md.transformations_table(HOW), md.transformations_of, HOW),
        (
            md.versions_table({"std.tax_monthly": 4, "std.amr_registration": 0}),
            md.versions_of,
            {"std.tax_monthly": 4, "std.amr_registration": 0},
        ),
        (md.tests_table(["not_null_x", "unique_y"]), md.tests_of, ["not_null_x", "unique_y"]),
    ]
    for table, read, original in cases:
        assert isinstance(table, dg.TableMetadataValue) and table.records
        assert read(table) == original
        assert read(dg.MetadataValue.json(original)) == original  # recorded by an earlier version
    assert md.grades_of(None) == {} and md.versions_of(None) == {} and md.tests_of(None) == []
    assert md.tests_of(md.tests_table([])) == []
    # the UI's table names every column of what it shows
    assert [c.name for c in md.grades_table(GRADES).schema.columns] == [
        "column",
        "level",
        "role",
        "transform",
        "inherited",
    ]
