{{ stg_cells('hospital') }}
