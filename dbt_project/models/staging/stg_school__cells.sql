{{ stg_cells('school') }}
