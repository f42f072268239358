{{ stg_cells('police') }}
