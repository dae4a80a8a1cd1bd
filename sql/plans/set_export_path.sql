-- Where a stored plan was published.
UPDATE plans SET export_path = $path WHERE plan_id = $plan_id
