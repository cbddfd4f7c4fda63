"""The code location: assets, checks, jobs, schedules, sensors and resources of the ZOHO Billing sync.

Extension points, one module each under `zoho_pipeline/defs/`: assets.py, checks.py, jobs.py, schedules.py,
sensors.py, partitions.py, resources.py. Add an object to the module's ALL_* list and it is loaded here. Kept
explicit rather than `load_from_defs_folder`: the lists are the code location's surface, reviewed as such.
"""

import dagster as dg

from zoho_pipeline.defs.assets import ALL_ASSETS, EXTERNAL_ASSETS
from zoho_pipeline.defs.checks import ALL_CHECKS
from zoho_pipeline.defs.demo import demo_jobs
from zoho_pipeline.defs.jobs import ALL_JOBS
from zoho_pipeline.defs.resources import resources_from_env
from zoho_pipeline.defs.schedules import ALL_SCHEDULES
from zoho_pipeline.defs.sensors import ALL_SENSORS

defs = dg.Definitions(
    assets=dg.with_source_code_references([*EXTERNAL_ASSETS, *ALL_ASSETS]),
    asset_checks=ALL_CHECKS,
    jobs=[*ALL_JOBS, *demo_jobs()],  # the demo's month job only with DAGSTER_DEPLOYMENT=demo
    schedules=ALL_SCHEDULES,
    sensors=ALL_SENSORS,
    resources=resources_from_env(),
)
