"""The steward console (数据管理员工作台): a web application beside the Dagster UI for the steward's daily work
that Dagster does not show — data previews under the viewer's privacy policy, the quarantine and problem
lists, the request queue with approvals, 亩均 lookups and column lineage. ``python -m console serve``."""
