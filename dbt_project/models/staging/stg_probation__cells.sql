{{ stg_cells('probation') }}
