{{ stg_cells('survey') }}
