# nbgrader configuration for gradeflow's bundled example course.
# Only course-relative settings: the course root is the directory nbgrader runs in.
c = get_config()  # noqa: F821 (injected by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "example-course"
