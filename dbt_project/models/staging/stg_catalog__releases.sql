select release_id, policy_sha256, code_version, input_files, input_sha256
from {{ source('catalog', 'release') }}
