"""Running a recorded run: its supervisor, its workload, and the one way mlproj stops things."""
