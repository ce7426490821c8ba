activation {
	thin_pool_autoextend_threshold=60
	thin_pool_autoextend_percent=20

}
