UPDATE uploads SET store_leftovers = false WHERE id = $1
